"""The report a person reads (`sweep report`): a study's best configuration against the tutorial's fixed
weights, the same network with balanced weights and a threshold tuned on validation, a simple reference and the
Bayes-optimal ceiling, all on the same held-out test rows, with figures."""

from __future__ import annotations

import dataclasses
import html
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sweep.data import Dataset
from sweep.errors import TrialFailed
from sweep.metrics import balanced_class_weight, bootstrap_intervals, metrics, paired_f1_difference
from sweep.plots import reliability_figure, study_figures
from sweep.space import TrialParams
from sweep.study.summary import describe_params

REPORTED = ("precision", "recall", "f1", "average_precision", "flag_rate")


@dataclass(frozen=True)
class Row:
    name: str
    values: dict[str, float]  # mean over seeds of each REPORTED metric on the test part
    spread: dict[str, float]  # standard deviation over seeds (0 for a single run)
    scores: np.ndarray | None = None  # test scores of one model of the row (the first seed), for paired comparisons
    threshold: float | None = None


def _row(name: str, runs: list[dict], scores=None, threshold=None) -> Row:
    return Row(
        name,
        {k: float(np.mean([r[k] for r in runs])) for k in REPORTED},
        {k: float(np.std([r[k] for r in runs])) for k in REPORTED},
        scores,
        threshold,
    )


@dataclass(frozen=True)
class _BothWeights(TrialParams):
    """A trial's params with the majority class's weight too (TrialParams fixes it at 1): every kind's training takes
    `class_weight`, so sklearn's balanced pair reaches the loss as it is."""

    majority_weight: float = 1.0

    @property
    def class_weight(self) -> dict[int, float]:
        return {0: float(self.majority_weight), 1: float(self.minority_weight)}


def practice_rows(kind, dataset: Dataset, params, settings, seeds=(0, 1, 2)) -> list[Row]:
    """Common practice without sweep (`kind.practice`: the tutorial's fixed networks, or the user's own model
    unweighted and with balanced weights), trained on all non-test rows (the rows the exported sweep model learns
    from) once per seed, read at 0.5 on the test rows."""
    fit = dataset.development
    rows = []
    for practice in kind.practice(params, settings, fit.y):
        runs, first = [], None
        for seed in seeds:
            seeded = dataclasses.replace(practice.settings, seed=seed)
            model = kind.fit(fit.X, fit.y, practice.params, practice.class_weight, seeded)
            scores = kind.score(model, dataset.test.X)
            first = scores if first is None else first
            runs.append(metrics(dataset.test.y, scores, 0.5))
        rows.append(_row(practice.name, runs, first, 0.5))
    return rows


def network_balanced_tuned(kind, dataset, params, settings, goal, seed: int | None = None) -> tuple[np.ndarray, float]:
    """What a careful user without sweep would do: the study's network with scikit-learn's balanced class weights
    and a decision threshold tuned for the study's objective on the non-test rows. Returns (its scores on
    dataset.test.X, the threshold).

    The network is the best trial's (`params`, `settings`, of model `kind`), trained with
    compute_class_weight("balanced") of the non-test labels ({0: w0, 1: w1} exactly, majority weight included)
    instead of the trial's minority weight, and with `seed` (default settings.seed). Steps:
    1. the dataset's own validation plan, through the trials' own training (kind.train_folds): one model on the
       training part scored on the validation part, or the fold models' pooled out-of-fold scores;
    2. sweep.metrics.choose_threshold on those validation scores for `goal`, within (0, 1) (an objective
       without a threshold, ap, keeps 0.5; a multi-objective study's goal is F1, which the report compares by);
    3. the same network refit on all non-test rows (dataset.development) and scored on the test rows.
    No step reads a test label: the test rows are only scored."""
    from sweep.metrics import choose_threshold, parse_goal

    seeded = dataclasses.replace(settings, seed=settings.seed if seed is None else int(seed))
    development = dataset.development
    weights = balanced_class_weight(development.y)
    fields = {f.name: getattr(params, f.name) for f in dataclasses.fields(TrialParams)}
    balanced = _BothWeights(**(fields | {"minority_weight": weights[1]}), majority_weight=weights[0])
    pooled = kind.train_folds(dataset, balanced, seeded).pooled
    threshold, _ = choose_threshold(
        parse_goal("f1") if goal.is_multi else goal, dataset.validation.y, pooled, (0.0, 1.0)
    )
    model = kind.fit(development.X, development.y, balanced, weights, seeded)
    return kind.score(model, dataset.test.X), threshold


def balanced_tuned_row(found, count: int = 1) -> Row:
    """network_balanced_tuned as a report row: the best trial's network (the user's model, for a user-model study)
    with balanced weights and a threshold tuned on validation scores for the study's objective, once per seed
    (`count` seeds derived from the trial's own, that seed first), each seed read at its own threshold: mean ± sd
    over seeds; the paired comparison uses the first seed's model and threshold."""
    from sweep.handover.ensemble import member_seeds

    y_test, runs, thresholds, first = found.dataset.test.y, [], [], None
    for seed in member_seeds(found.settings.seed, count):
        scores, threshold = network_balanced_tuned(
            found.kind, found.dataset, found.params, found.settings, found.goal, seed
        )
        first = scores if first is None else first
        runs.append(metrics(y_test, scores, threshold))
        thresholds.append(threshold)
    over = f"; {min(thresholds):.3f}-{max(thresholds):.3f} over {len(thresholds)} seeds" if len(thresholds) > 1 else ""
    network = found.kind.network_words
    return _row(
        f"{network}, balanced weights, threshold tuned on validation ({thresholds[0]:.3f}{over})",
        runs,
        first,
        thresholds[0],
    )


def logistic_reference_row(dataset: Dataset) -> Row:
    """sklearn's LogisticRegression(class_weight="balanced") with its threshold tuned for F1 by CV on all
    non-test rows (arrays of images or sequences flattened to one row of values each)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import TunedThresholdClassifierCV

    def flat(X: np.ndarray) -> np.ndarray:
        return X.reshape(len(X), -1)

    tuned = TunedThresholdClassifierCV(
        LogisticRegression(class_weight="balanced", max_iter=1000), scoring="f1", random_state=0
    )
    tuned.fit(flat(dataset.development.X), dataset.development.y)
    scores = tuned.predict_proba(flat(dataset.test.X))[:, 1]
    found = metrics(dataset.test.y, scores, tuned.best_threshold_)
    return _row(
        f"logistic regression, balanced, CV-tuned threshold {tuned.best_threshold_:.3f}",
        [found],
        scores,
        tuned.best_threshold_,
    )


@dataclass(frozen=True)
class Difference:
    """The sweep model's test F1 minus a comparison row's, on the same rows, with a paired bootstrap interval."""

    name: str
    difference: float
    low: float
    high: float

    @property
    def verdict(self) -> str:
        if self.low > 0:
            return "sweep better beyond sampling noise"
        if self.high < 0:
            return "sweep worse beyond sampling noise"
        return "no difference beyond sampling noise"


def paired_differences(y_test: np.ndarray, best: Row, rows: list[Row]) -> list[Difference]:
    """F1(sweep) - F1(row) for every other row that kept its test scores (paired stratified bootstrap)."""
    found = []
    for row in rows:
        if row is best or row.scores is None:
            continue
        d = paired_f1_difference(y_test, best.scores, best.threshold, row.scores, row.threshold)
        found.append(Difference(row.name, d["difference"], d["low"], d["high"]))
    return found


def differences_markdown(differences: list[Difference]) -> str:
    lines = [
        "| compared with | F1 difference (sweep - row) | 95% paired bootstrap interval | verdict |",
        "|---|---|---|---|",
    ]
    lines += [f"| {d.name} | {d.difference:+.3f} | [{d.low:+.3f}, {d.high:+.3f}] | {d.verdict} |" for d in differences]
    return "\n".join(lines)


def differences_html(differences: list[Difference]) -> str:
    body = "".join(
        f"<tr><td>{html.escape(d.name)}</td><td>{d.difference:+.3f}</td>"
        f"<td>[{d.low:+.3f}, {d.high:+.3f}]</td><td>{d.verdict}</td></tr>"
        for d in differences
    )
    return (
        "<table><thead><tr><th>compared with</th><th>F1 difference (sweep - row)</th>"
        "<th>95% paired bootstrap interval</th>"
        f"<th>verdict</th></tr></thead><tbody>{body}</tbody></table>"
    )


def markdown_table(rows: list[Row]) -> str:
    """A markdown table of the rows; seed-to-seed spread shown as ± where there is one."""
    header = "| model | " + " | ".join(REPORTED).replace("_", " ") + " |"
    lines = [header, "|---" * (len(REPORTED) + 1) + "|"]
    for row in rows:
        cells = [f"{row.values[k]:.3f}" + (f" ± {row.spread[k]:.3f}" if row.spread[k] > 0 else "") for k in REPORTED]
        lines.append(f"| {row.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def scored_row(name: str, y_true: np.ndarray, scores: np.ndarray, threshold: float) -> Row:
    return _row(name, [metrics(y_true, scores, threshold)], scores, threshold)


def intervals_line(intervals: dict) -> str:
    """One line: each metric's 95% interval."""
    return "Sweep model, 95% stratified bootstrap intervals on the test rows: " + ", ".join(
        f"{k.replace('_', ' ')} [{low:.3f}, {high:.3f}]" for k, (low, high) in intervals.items()
    )


def html_table(rows: list[Row]) -> str:
    """The same table as markdown_table, as HTML."""
    head = "".join(f"<th>{k.replace('_', ' ')}</th>" for k in REPORTED)
    body = []
    for row in rows:
        cells = "".join(
            f"<td>{row.values[k]:.3f}" + (f" ± {row.spread[k]:.3f}" if row.spread[k] > 0 else "") + "</td>"
            for k in REPORTED
        )
        body.append(f"<tr><td>{html.escape(row.name)}</td>{cells}</tr>")
    return f"<table><thead><tr><th>model</th>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


@dataclass(frozen=True)
class StudyReport:
    """One study's section of the report: its comparison table and figure files."""

    study: str
    objective: str
    best_number: int
    best_values: tuple[float, ...]
    rows: list[Row]
    best_row: Row
    figures: list[Path]
    notes: list[str]
    intervals: dict  # the sweep model's 95% bootstrap interval per metric
    differences: list[Difference]
    probability: dict | None = (
        None  # Brier and log loss of the raw score and the calibrated probability (probability_table)
    )
    calibration: str = ""  # how the probability is calibrated, in words


def study_report(storage_url: str, study_name: str, folder: Path, seeds=(0, 1, 2), pick=None):
    """Retrain the study's best trial with its seed and compare it on the test rows with the tutorial's
    fixed weights, the same network with balanced weights and a threshold tuned on validation (balanced_tuned_row),
    the simple logistic reference and (for the seed data) the Bayes-optimal ceiling: a StudyReport. A study of three or
    more classes gets its own comparison (sweep.reading.class_report.ClassStudyReport)."""
    from sweep.handover.classes import ClassRetrained
    from sweep.handover.retrain import refit_rows, retrain_best
    from sweep.reading.class_report import class_study_report

    found = retrain_best(storage_url, study_name, pick)
    if isinstance(found, ClassRetrained):
        return class_study_report(found, folder, seeds)
    study, best, dataset = found.study, found.trial, found.dataset
    best_scores, threshold = found.ensemble.scores(found.test.X), found.threshold  # what `sweep export` ships
    best_row = scored_row(_best_label(found, refit_rows(found)), dataset.test.y, best_scores, threshold)
    intervals = bootstrap_intervals(dataset.test.y, best_scores, threshold, seed=found.settings.seed)
    notes = [
        "Every model here learned from all non-test rows; the tutorial rows (for your own model: the same model, "
        "unweighted and with balanced weights, read at 0.5) are means ± sd over seeds, and their paired comparison "
        "uses the first seed's model."
    ]
    balanced = _balanced_rows(found, seeds, notes)
    rows = practice_rows(found.kind, dataset, found.params, found.settings, seeds) + [best_row] + balanced
    rows.append(logistic_reference_row(dataset))
    if found.fallback:
        notes.append(f"What export ships: {found.fallback}.")
    if found.goal.is_multi:
        notes.append(f"Multi-objective study: the trial above was picked from the Pareto front by {pick or 'best f1'}.")
    if study.user_attrs["config"]["data"] == "seed":
        rows.append(bayes_ceiling_row(dataset))
        notes.append(BAYES_NOTE)
    figures = study_figures(study, best_scores, dataset.test.y, threshold, folder)
    probability, reliability = calibration_section(found, best_scores, folder)
    return StudyReport(
        study_name,
        study.user_attrs["objective"]["spec"],
        best.number,
        tuple(best.values),
        rows,
        best_row,
        figures + [reliability],
        notes,
        intervals,
        paired_differences(dataset.test.y, best_row, rows),
        probability,
        found.calibration.describe(),
    )


BAYES_NOTE = (
    "Bayes-optimal ceiling: the generator's own posterior P(y=1|x) (cluster Gaussians, priors and "
    "label-flip noise recovered by replaying make_classification), at the threshold that maximises F1 on a "
    "million fresh rows drawn from that generator. Its average precision is the stable comparison: F1 on 213 "
    "test positives moves by about ±0.02 from sampling alone, so a fitted model can tie or pass the "
    "ceiling's F1 on one split by luck."
)


def _best_label(found, trained_on: str) -> str:
    """The sweep's row: its trial and params, or for an ensemble the threshold its shipped models are read at."""
    best, shipped = found.trial, found.ensemble
    if shipped.kind == "single":
        return f"sweep best (trial #{best.number}, trained on {trained_on}): {describe_params(best.params)}"
    params = describe_params(best.params | {"threshold": found.threshold})
    return (
        f"sweep best (trial #{best.number} in a {shipped.kind} ensemble of {len(shipped.models)} model(s); "
        f"trained on {trained_on}): {params} (the ensemble's)"
    )


def _balanced_rows(found, seeds, notes: list[str]) -> list[Row]:
    """The balanced-weights row with a tuned threshold and its note, or none with the reason it could not be made."""
    objective = found.study.user_attrs["objective"]["spec"]
    judged = (
        "the pooled out-of-fold scores of its fold models"
        if found.dataset.validation.kind == "cv"
        else "the validation part's scores of a model trained on the training part"
    )
    try:
        balanced = [balanced_tuned_row(found, len(seeds))]
    except TrialFailed as failure:  # e.g. a network whose every unit died under the balanced weights
        notes.append(
            f"The best trial's network with balanced weights and a tuned threshold could not be compared: {failure}."
        )
        return []
    notes.append(
        f"The balanced-weights row is what a careful user would do without sweep: the best trial's network with "
        f"scikit-learn's balanced class weights, its threshold chosen for {'F1' if found.goal.is_multi else objective} "
        f"on {judged} (the trials' own validation), then refit on all non-test rows and read at that threshold; "
        f"mean ± sd over {len(seeds)} seed(s) (the trial's seed first), each at its own threshold."
    )
    return balanced


PROBABILITY_OUTPUTS = ("raw score", "calibrated probability", "constant: the non-test positive rate")


def calibration_section(found, best_scores: np.ndarray, folder: Path) -> tuple[dict, Path]:
    """Brier score and log loss (with bootstrap intervals) on the test rows of the sweep model's raw score, its
    calibrated probability (what `sweep predict` gives) and the non-test positive rate predicted everywhere, and
    the reliability figure of the first two."""
    from sweep.handover.calibration import probability_scores

    y, seed = found.dataset.test.y, found.settings.seed
    outputs = {
        "raw score": np.asarray(best_scores, dtype=np.float64),
        "calibrated probability": found.calibration(best_scores),
        "constant: the non-test positive rate": np.full(len(y), float(np.mean(found.dataset.development.y))),
    }
    found_scores = {name: probability_scores(y, values, seed=seed) for name, values in outputs.items()}
    name = found.study.study_name
    figure = reliability_figure(
        y,
        {k: outputs[k] for k in PROBABILITY_OUTPUTS[:2]},
        folder / f"{name}-test-reliability.png",
        f"{name}: best trial, test rows ({np.mean(y):.2%} positives)",
    )
    return found_scores, figure


def probability_rows(probability: dict) -> list[tuple[str, str, str, str]]:
    """(output, mean, Brier [interval], log loss [interval]) for each output of calibration_section."""

    def cell(found: dict, key: str) -> str:
        low, high = found["intervals"][key]
        return f"{found[key]:.4f} [{low:.4f}, {high:.4f}]"

    return [
        (name, f"{found['mean_probability']:.4f}", cell(found, "brier"), cell(found, "log_loss"))
        for name, found in probability.items()
    ]


PROBABILITY_HEADER = ("output", "mean", "Brier score [95% interval]", "log loss [95% interval]")


def bayes_ceiling_row(dataset: Dataset) -> Row:
    """The seed generator's Bayes-optimal classifier on the test rows, at the F1-optimal threshold of the
    generator itself (found on a million fresh rows drawn from it, so no split of the data chooses it)."""
    from sweep.reading.bayes import generator_parameters, posterior, sample_generator

    params = generator_parameters()
    fresh_X, fresh_y = sample_generator(params, 1_000_000)
    threshold = best_f1_threshold(fresh_y, posterior(params, fresh_X))
    raw_test = dataset.test_frame.to_numpy(dtype=np.float64)
    return scored_row(
        f"Bayes-optimal ceiling (threshold {threshold:.3f})", dataset.test.y, posterior(params, raw_test), threshold
    )


def best_f1_threshold(y_true: np.ndarray, scores: np.ndarray) -> float:
    """The score threshold with the highest F1 (sklearn's precision-recall curve)."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(y_true, scores)
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    return float(thresholds[int(np.argmax(f1[:-1]))])


def write_report(
    storage_url: str, study_names: list[str], out_dir: str | Path, seeds=(0, 1, 2), force: bool = False, pick=None
) -> Path:
    """Write report.md, a self-contained report.html and the PNG figures for one or more studies to `out_dir`."""
    import shutil

    from sweep.errors import ExportError

    out_dir = Path(out_dir)
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise ExportError(
            f"report directory {str(out_dir)!r} exists and is not empty; choose another --out or pass --force"
        )
    if out_dir.is_dir():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    sections = [study_report(storage_url, name, out_dir, seeds, pick) for name in study_names]
    md = ["# Minority-weight sweep report", "", "All metrics on the held-out **test** rows, which no search used.", ""]
    page = [
        "<h1>Minority-weight sweep report</h1>"
        "<p>All metrics on the held-out <b>test</b> rows, which no search used.</p>"
    ]
    binary = [s for s in sections if isinstance(s, StudyReport)]
    if len(binary) > 1:
        md += ["## Studies side by side", "", markdown_table([_named(s) for s in binary]), ""]
        page.append("<h2>Studies side by side</h2>" + html_table([_named(s) for s in binary]))
    for section in sections:
        md += _section_markdown(section) if isinstance(section, StudyReport) else section.markdown()
        page += _section_html(section) if isinstance(section, StudyReport) else section.html()
    (out_dir / "report.md").write_text("\n".join(md) + "\n")
    (out_dir / "report.html").write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>sweep report</title><style>{REPORT_STYLE}</style>"
        "</head><body>" + "".join(page) + "</body></html>\n"
    )
    return out_dir


REPORT_STYLE = (
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child{text-align:left}img{max-width:100%}"
)
PROBABILITY_TITLE = "Is `probability` a probability? (test rows; lower is better)"


def _section_title(section: StudyReport) -> str:
    shown = ", ".join(f"{v:.4g}" for v in section.best_values)
    return (
        f"Study {section.study}: objective {section.objective}, best trial #{section.best_number} (validation {shown})"
    )


def _section_markdown(section: StudyReport) -> list[str]:
    """One study's part of report.md."""
    md = [f"## {_section_title(section)}", "", markdown_table(section.rows), "", intervals_line(section.intervals), ""]
    md += ["### Is the sweep's model better? (test F1, paired)", "", differences_markdown(section.differences), ""]
    if section.probability:
        md += [f"### {PROBABILITY_TITLE}", "", f"`probability` is the {section.calibration}.", ""]
        md += ["| " + " | ".join(PROBABILITY_HEADER) + " |", "|---|---|---|---|"]
        md += ["| " + " | ".join(cells) + " |" for cells in probability_rows(section.probability)] + [""]
    md += [f"- {note}" for note in section.notes] + [""]
    return md + [f"![{figure.stem}]({figure.name})" for figure in section.figures] + [""]


def _section_html(section: StudyReport) -> list[str]:
    """One study's part of report.html, its figures embedded."""
    import base64

    page = [f"<h2>{html.escape(_section_title(section))}</h2>" + html_table(section.rows)]
    page.append(f"<p>{html.escape(intervals_line(section.intervals))}</p>")
    page.append("<h3>Is the sweep's model better? (test F1, paired)</h3>" + differences_html(section.differences))
    if section.probability:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in PROBABILITY_HEADER)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>"
            for cells in probability_rows(section.probability)
        )
        title = PROBABILITY_TITLE.replace("`probability`", "<code>probability</code>")
        page.append(
            f"<h3>{title}</h3><p>{html.escape('probability is the ' + section.calibration)}.</p>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        )
    page += [f"<p>{html.escape(note)}</p>" for note in section.notes]
    for figure in section.figures:
        encoded = base64.b64encode(figure.read_bytes()).decode()
        page.append(
            f'<figure><img alt="{figure.stem}" src="data:image/png;base64,{encoded}">'
            f"<figcaption>{figure.stem}</figcaption></figure>"
        )
    return page


def _named(section: StudyReport) -> Row:
    return Row(f"{section.study} ({section.objective})", section.best_row.values, section.best_row.spread)
