"""`sweep report`'s section for a study of three or more classes: the exported model with its decision rule against
the same model read at argmax, the same network with scikit-learn's balanced weights and unweighted (both at argmax),
and a class-balanced multinomial logistic regression, on the same test rows with paired bootstrap intervals; each
class's test metrics with intervals, and a confusion-matrix figure."""

from __future__ import annotations

import dataclasses
import html
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sweep.data import SEED_CLASSES
from sweep.handover.classes import ClassRetrained, bootstrap_class_metrics, class_intervals
from sweep.multiclass import balanced_weights, class_metrics
from sweep.plots import class_confusion_figure

SHOWN = ("macro_f1", "balanced_accuracy", "accuracy")
# Fresh rows of the reference generator the ceiling's rule is chosen on.
CEILING_ROWS = 200_000


@dataclass(frozen=True)
class ClassRow:
    """One comparison row: the decisions of its model on the test rows (the first seed's), and the mean and spread of
    its metrics over seeds."""

    name: str
    decisions: np.ndarray
    values: dict[str, float]
    spread: dict[str, float]


@dataclass(frozen=True)
class ClassStudyReport:
    """One study's section for several classes: its rows, paired differences, per-class metrics and figures."""

    study: str
    objective: str
    best_number: int
    best_value: float
    classes: tuple[str, ...]
    rows: list[ClassRow]
    differences: list[tuple[str, str, float, float, float]]  # (row, metric, difference, low, high)
    per_class: dict[str, dict[str, float]]  # the sweep model's recall, precision and flag rate by class
    intervals: dict[str, list[float]]
    figures: list[Path]
    notes: list[str]

    def markdown(self) -> list[str]:
        md = [f"## {self.title()}", "", _rows_markdown(self.rows), ""]
        md += ["### Is the sweep's model better? (paired, test rows)", "", _differences_markdown(self.differences), ""]
        md += ["### Each class (the sweep's model, test rows)", "", self._per_class_markdown(), ""]
        md += [f"- {note}" for note in self.notes] + [""]
        return md + [f"![{figure.stem}]({figure.name})" for figure in self.figures] + [""]

    def html(self) -> list[str]:
        import base64

        page = [f"<h2>{html.escape(self.title())}</h2>", table_html(_rows_markdown(self.rows))]
        page.append("<h3>Is the sweep's model better? (paired, test rows)</h3>")
        page.append(table_html(_differences_markdown(self.differences)))
        page.append("<h3>Each class (the sweep's model, test rows)</h3>" + table_html(self._per_class_markdown()))
        page += [f"<p>{html.escape(note)}</p>" for note in self.notes]
        for figure in self.figures:
            encoded = base64.b64encode(figure.read_bytes()).decode()
            page.append(f'<figure><img alt="{figure.stem}" src="data:image/png;base64,{encoded}"></figure>')
        return page

    def title(self) -> str:
        return (
            f"Study {self.study}: objective {self.objective} on {len(self.classes)} classes, best trial "
            f"#{self.best_number} (validation {self.best_value:.4g})"
        )

    def _per_class_markdown(self) -> str:
        lines = ["| class | recall [95% interval] | precision | flag rate |", "|---|---|---|---|"]
        for name, found in self.per_class.items():
            low, high = self.intervals[f"recall:{name}"]
            lines.append(
                f"| {name} | {found['recall']:.3f} [{low:.3f}, {high:.3f}] | {found['precision']:.3f} | "
                f"{found['flag_rate']:.3f} |"
            )
        return "\n".join(lines)


def class_study_report(found: ClassRetrained, folder: Path, seeds=(0, 1, 2)) -> ClassStudyReport:
    """Compare the exported model of a study of several classes with the comparison rows on the test rows."""
    chosen = found.chosen
    dataset, names = chosen.dataset, chosen.dataset.classes
    y = found.test.y
    scores = found.ensemble.scores(found.test.X)
    sweep_row = _row(f"sweep: trial #{chosen.trial.number}, its decision rule", [found.rule.decide(scores)], y, names)
    argmax_row = _row("the same model read at argmax", [np.argmax(scores, axis=1)], y, names)
    rows = [sweep_row, argmax_row, *network_rows(found, seeds), logistic_row(dataset)]
    ceiling = chosen.study.user_attrs["config"]["data"] == SEED_CLASSES
    resamples = bootstrap_class_metrics(y, {row.name: row.decisions for row in rows}, len(names), chosen.settings.seed)
    test = class_metrics(y, sweep_row.decisions, names)
    differences = []
    for row in rows[1:]:
        observed = class_metrics(y, row.decisions, names)
        for metric in ("macro_f1", "balanced_accuracy"):
            paired = resamples[sweep_row.name][metric] - resamples[row.name][metric]
            low, high = np.percentile(paired, [2.5, 97.5])
            differences.append((row.name, metric, test[metric] - observed[metric], low, high))
    per_class = {n: {k: test[f"{k}:{n}"] for k in ("recall", "precision", "flag_rate")} for n in names}
    notes = [
        "Every model here learned from all non-test rows (the sweep's: as `sweep export` ships it); the network rows "
        f"are means ± sd over {len(seeds)} seeds and their paired comparison uses the first seed's model. Intervals: "
        "95% percentile, stratified bootstrap of the test rows, each row scored on the same resamples."
    ]
    if found.fallback:
        notes.append(f"What export ships: {found.fallback}.")
    if ceiling:
        rows.append(bayes_ceiling_row(dataset, chosen.goal))
        notes.append(CEILING_NOTE)
    path = folder / f"{chosen.study.study_name}_confusion.png"
    figure = class_confusion_figure(y, sweep_row.decisions, names, path, "test rows")
    return ClassStudyReport(
        chosen.study.study_name, chosen.study.user_attrs["objective"]["spec"], chosen.trial.number,
        float(chosen.trial.value), names, rows, differences, per_class,
        class_intervals(resamples[sweep_row.name], names), [figure], notes,
    )  # fmt: skip


def network_rows(found: ClassRetrained, seeds) -> list[ClassRow]:
    """The same network (the best trial's params and settings) trained on all non-test rows with scikit-learn's balanced
    weights and unweighted, one model per seed, read at argmax."""
    chosen = found.chosen
    dataset, kind, params = chosen.dataset, chosen.kind, chosen.params
    development, test = dataset.development, dataset.test
    counts = dataset.class_counts
    rows = []
    for name, weights in (
        ("balanced weights", balanced_weights(counts)),
        ("unweighted", dict.fromkeys(range(len(counts)), 1.0)),
    ):
        decided = []
        for seed in seeds:
            settings = dataclasses.replace(chosen.settings, seed=chosen.settings.seed + seed)
            model = kind.fit(development.X, development.y, params, weights, settings)
            decided.append(np.argmax(kind.score(model, test.X), axis=1))
        rows.append(_row(f"{kind.network_words}, {name}, argmax", decided, test.y, dataset.classes))
    return rows


CEILING_NOTE = (
    "Bayes-optimal ceiling: the generator's own posterior P(y = k | x) (each class's Gaussian, its prior and the "
    f"label-flip noise, recovered by replaying make_classification), decided by the logit adjustment chosen for the "
    f"objective on {CEILING_ROWS:,} fresh rows drawn from that generator; no model fitted to these rows can do better "
    "than it but by the luck of the test sample."
)


def bayes_ceiling_row(dataset, goal) -> ClassRow:
    """The reference data's ceiling: its generator's true class posteriors of the test rows, decided by the rule chosen
    on fresh rows of the generator for the study's objective."""
    from sweep.data.readers import SEED_CLASSES_RECIPE
    from sweep.multiclass import bind_class_goal, choose_rule
    from sweep.reading.bayes import class_posteriors, generator_parameters, sample_generator

    params = generator_parameters(SEED_CLASSES_RECIPE)
    fresh_x, fresh_y = sample_generator(params, CEILING_ROWS)
    rule, _ = choose_rule(
        bind_class_goal(goal, dataset.classes), fresh_y, class_posteriors(params, fresh_x), params.priors
    )
    decided = rule.decide(class_posteriors(params, dataset.test_frame.to_numpy()))
    return _row("Bayes-optimal ceiling", [decided], dataset.test.y, dataset.classes)


def logistic_row(dataset) -> ClassRow:
    """scikit-learn's multinomial logistic regression with balanced class weights on the same encoded rows."""
    from sklearn.linear_model import LogisticRegression

    development, test = dataset.development, dataset.test
    flat = development.X.reshape(len(development.X), -1)
    model = LogisticRegression(class_weight="balanced", max_iter=2000).fit(flat, development.y)
    decided = model.predict(test.X.reshape(len(test.X), -1))
    return _row("logistic regression, balanced weights", [decided], test.y, dataset.classes)


def _row(name: str, decisions: list[np.ndarray], y: np.ndarray, names: tuple[str, ...]) -> ClassRow:
    found = [class_metrics(y, decided, names) for decided in decisions]
    values = {key: float(np.mean([f[key] for f in found])) for key in SHOWN}
    spread = {key: float(np.std([f[key] for f in found])) for key in SHOWN}
    return ClassRow(name, np.asarray(decisions[0]), values, spread)


def _rows_markdown(rows: list[ClassRow]) -> str:
    lines = ["| model | macro-F1 | balanced accuracy | accuracy |", "|---|---|---|---|"]
    for row in rows:
        cells = [f"{row.values[k]:.3f}" + (f" ± {row.spread[k]:.3f}" if row.spread[k] > 0 else "") for k in SHOWN]
        lines.append(f"| {row.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _differences_markdown(differences) -> str:
    lines = ["| sweep minus | metric | difference [95% interval] | verdict |", "|---|---|---|---|"]
    for name, metric, difference, low, high in differences:
        verdict = "sweep better" if low > 0 else ("sweep worse" if high < 0 else "within noise")
        lines.append(f"| {name} | {metric} | {difference:+.3f} [{low:+.3f}, {high:+.3f}] | {verdict} |")
    return "\n".join(lines)


def table_html(markdown: str) -> str:
    """A markdown table of this module's (a header, a separator, rows of plain cells) as an HTML table."""
    lines = [line.strip().strip("|").split("|") for line in markdown.splitlines()]
    head = "".join(f"<th>{html.escape(cell.strip())}</th>" for cell in lines[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell.strip())}</td>" for cell in cells) + "</tr>" for cells in lines[2:]
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
