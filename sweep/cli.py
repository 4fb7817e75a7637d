"""Thin Typer commands: each parses its options, makes one library call and prints the result."""

from __future__ import annotations

import functools
import sys
import traceback
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from sweep.errors import SweepError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Optuna sweeps of the minority-class weight, hidden width and threshold of Keras classifiers.",
)
# Wide tables when piped (Rich would fall back to 80 columns and truncate them).
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, soft_wrap=True)
_state = {"debug": False}

StorageOption = Annotated[
    str | None,
    typer.Option(
        "--storage",
        help="SQLAlchemy URL of the study storage",
        show_default="SWEEP_STORAGE or sqlite:///studies/sweeps.db",
    ),
]


def _storage_url(storage: str | None) -> str:
    """The storage URL from --storage, SWEEP_STORAGE or the default; sets this process's outage limit
    (SWEEP_OUTAGE_LIMIT) as well, so show, export, report and the dashboard ride out an outage as a run does."""
    from sweep.config import resolve_config
    from sweep.study import outage

    config = resolve_config({"storage": storage})
    outage.configure(config.outage_limit)
    return config.storage


def reports_errors(command):
    """Turn library errors into one line on stderr and an exit code (2 bad input, 1 other); --debug shows tracebacks."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except SweepError as exc:
            if _state["debug"]:
                traceback.print_exc()
            err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err.print("interrupted", highlight=False)
            raise typer.Exit(130) from None
        except typer.Exit:
            raise
        except Exception as exc:  # the last line of defence: no traceback unless --debug
            if _state["debug"]:
                traceback.print_exc()
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            err.print(
                f"error: {type(exc).__name__}: {first_line} (run `sweep --debug ...` for the traceback)",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(1) from None

    return wrapper


@app.callback()
def main_options(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
) -> None:
    """Optuna sweeps of the minority-class weight, hidden width and threshold of Keras classifiers."""
    _state["debug"] = debug
    import optuna

    optuna.logging.set_verbosity(optuna.logging.DEBUG if debug else optuna.logging.WARNING)
    if not debug:
        from sweep.errors import quiet_trial_tracebacks

        quiet_trial_tracebacks()


PickOption = Annotated[
    str | None,
    typer.Option(
        "--pick",
        help="Multi-objective studies: which Pareto-front trial to use, e.g. 'recall:precision>=0.2'. [default: f1]",
    ),
]


@app.command()
@reports_errors
def run(
    config: Annotated[
        Path | None, typer.Option("--config", help="TOML file; every option below is a key in it.")
    ] = None,
    study: Annotated[
        str | None, typer.Option(help="Study name; an existing study is resumed.", show_default="minority-weight")
    ] = None,
    storage: StorageOption = None,
    data: Annotated[
        str | None,
        typer.Option(
            help="'seed' (the reference data), 'seed-classes' (four classes) or a CSV/Parquet/.npz path.",
            show_default="seed",
        ),
    ] = None,
    target: Annotated[str | None, typer.Option(help="Label column of a data file.")] = None,
    positive_label: Annotated[
        str | None, typer.Option(help="Label of the positive (minority) class when it is not 1.")
    ] = None,
    trials: Annotated[
        int | None,
        typer.Option(help="Finished trials the study should hold in total (not 'more').", show_default="30"),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            help="Stop starting new trials after this many seconds (a population round still training stops at its "
            "next epoch)."
        ),
    ] = None,
    trial_timeout: Annotated[
        float | None,
        typer.Option(
            metavar="SECONDS",
            help="Fail a trial (each population member, your own model) that runs longer than this many seconds; the "
            "worker goes on with the next trial.",
        ),
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Training epochs per trial.", show_default="50")] = None,
    min_steps: Annotated[
        int | None,
        typer.Option(
            help="The builtin network trains at least this many Adam steps per fold model: on a small table the epochs "
            "grow to reach it (0 = exactly --epochs).",
            show_default="0",
        ),
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Mini-batch size.", show_default="100")] = None,
    learning_rate: Annotated[
        str | None,
        typer.Option(
            help="Adam learning rate, a range LOW:HIGH to search (log scale), or auto: the builtin network's rate "
            "sized to its training steps (0.001 to 0.01; a user's model 0.001).",
            show_default="auto",
        ),
    ] = None,
    objective: Annotated[
        str | None,
        typer.Option(
            help="f1 | fbeta:BETA | ap | recall_at_precision:P | cost:miss=A,false_alarm=B.", show_default="f1"
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed of the sampler, the validation split and every trial.", show_default="0")
    ] = None,
    minority_weight: Annotated[
        str | None, typer.Option(help="Range LOW:HIGH of the minority weight (log scale).", show_default="1:1000")
    ] = None,
    hidden_width: Annotated[
        str | None, typer.Option(help="Range LOW:HIGH of hidden units (log scale).", show_default="1:64")
    ] = None,
    threshold: Annotated[
        str | None, typer.Option(help="Range LOW:HIGH of the decision threshold.", show_default="0.01:0.99")
    ] = None,
    threshold_search: Annotated[
        str | None,
        typer.Option(
            help="sampled: the sampler draws each trial's threshold like the weight; tuned: each trial's threshold is "
            "the one within the range that scores best on its own validation scores.",
            show_default="sampled",
        ),
    ] = None,
    hidden_layers: Annotated[
        str | None,
        typer.Option(
            help="Hidden layers of the builtin network, 0 (linear) to 8, or auto: linear unless one hidden layer "
            "ranks the validation rows better beyond noise.",
            show_default="auto",
        ),
    ] = None,
    weight_decay: Annotated[
        float | None,
        typer.Option(help="The builtin network's decoupled weight decay on its kernels, as AdamW.", show_default="0"),
    ] = None,
    validation_fraction: Annotated[
        float | None, typer.Option(help="Share of the non-test rows used for validation.", show_default="0.2")
    ] = None,
    test_fraction: Annotated[
        float | None,
        typer.Option(help="Share of a data file held out as test (seed data: the tutorial's 20%).", show_default="0.2"),
    ] = None,
    pruner: Annotated[
        str | None,
        typer.Option(
            help="none | median | percentile:P | hyperband | successive_halving (per-epoch validation objective).",
            show_default="median",
        ),
    ] = None,
    intra_op_threads: Annotated[
        int | None, typer.Option(help="TensorFlow threads inside one op (0 = automatic).", show_default="0")
    ] = None,
    inter_op_threads: Annotated[
        int | None, typer.Option(help="TensorFlow ops run in parallel (0 = automatic).", show_default="0")
    ] = None,
    population: Annotated[
        int | None,
        typer.Option(
            help="Trials trained together in one compiled model (0 = automatic, 1 = one at a time; one hidden layer).",
            show_default="0",
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes on this machine, all on the same study.", show_default="1")
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(
            help="auto | cpu | gpu | gpu:N; auto puts worker i on GPU i mod n when there are GPUs.", show_default="auto"
        ),
    ] = None,
    heartbeat_interval: Annotated[
        int | None, typer.Option(help="Seconds between a running trial's heartbeats.", show_default="10")
    ] = None,
    grace_period: Annotated[
        int | None,
        typer.Option(
            help="Seconds without a heartbeat after which a trial's worker is taken for dead: the trial is failed and "
            "retried.",
            show_default="30",
        ),
    ] = None,
    outage_limit: Annotated[
        float | None,
        typer.Option(
            metavar="SECONDS",
            help="How long every process (driver, workers) waits for an unreachable storage (a database restart) "
            "before it gives up with exit code 2; nothing stored is lost.",
            show_default="180",
        ),
    ] = None,
    cv: Annotated[
        str | None,
        typer.Option(
            help="Folds per trial: K stratified folds of all non-test rows, judged on pooled out-of-fold scores; 0 = "
            "one validation split; auto = folds when a validation split would hold under 100 positives.",
            show_default="auto",
        ),
    ] = None,
    cv_repeats: Annotated[
        int | None,
        typer.Option(
            help="Repeats of the K folds with other shuffles (each row validated once per repeat).", show_default="1"
        ),
    ] = None,
    features: Annotated[
        str | None, typer.Option(help="Input columns to use, COL,COL (default: every column but the target).")
    ] = None,
    drop: Annotated[str | None, typer.Option(help="Columns not to use, COL,COL (identifiers, leaks).")] = None,
    min_level_count: Annotated[
        int | None,
        typer.Option(
            help="Levels of a text column seen fewer times in the training rows go to one '(other)' level.",
            show_default="5",
        ),
    ] = None,
    max_levels: Annotated[
        int | None,
        typer.Option(
            help="Most levels kept per text column: past it the most frequent are kept and the rest grouped in "
            "'(other)'.",
            show_default="50",
        ),
    ] = None,
    cluster: Annotated[
        str | None,
        typer.Option(
            help="Place one worker loop per Dask worker: tcp://HOST:PORT of a running Dask scheduler, or local:N "
            "(needs the cluster extra)."
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="builtin, or your own Keras model: PATH.py:FUNCTION or package.module:FUNCTION, called as "
            "FUNCTION(params, input_shape).",
            show_default="builtin",
        ),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            help="A parameter of your model's search space (repeatable): NAME=LOW:HIGH, NAME=LOW:HIGH:log, NAME=A,B,C "
            "or NAME=VALUE.",
        ),
    ] = None,
) -> None:
    """Run (or resume) a sweep until the study holds --trials finished trials. `sweep worker` is the same
    command: start it on other machines with the same --study and --storage to join a running study."""
    flags = {k: v for k, v in locals().items() if k not in ("config", "param")} | {"space": param or None}
    from sweep import stopping
    from sweep.config import resolve_config
    from sweep.study.runner import run_workers

    resolved = resolve_config(flags, config_file=config)
    if resolved.cluster:  # the only way to Dask: without --cluster nothing of it is imported
        from sweep.study.cluster import run_cluster as run_workers
    with stopping.graceful():  # Ctrl-C, `kill`, `docker stop`: the running trial ends FAIL at its next epoch
        summary = _run_with_progress(resolved, run_workers)
    _print_run_summary(resolved, summary)
    if summary.stop_reason:
        err.print(f"error: {summary.stop_reason}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1)


app.command(
    name="worker",
    help="Join (or start) a study and run trials until it holds --trials finished trials: the same as `sweep run`, "
    "meant for extra machines or containers pointed at a shared --storage.",
)(run)


def _run_with_progress(config, run_workers):
    """Run the sweep with a progress bar (trials done, best value, elapsed) that appears once checks have passed."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from sweep.reading.results import format_values
    from sweep.study.summary import BUDGET_STATES, best_trial, count_trials

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("best {task.fields[best]}"),
        TimeElapsedColumn(),
    )
    progress = Progress(*columns, console=err, transient=False)
    task = progress.add_task(f"study {config.study}", total=config.trials, best="-", start=False)

    def update(study) -> None:
        best = best_trial(study)
        done = min(count_trials(study, BUDGET_STATES), config.trials)
        progress.update(task, completed=done, best=format_values(best) if best else "-")

    def start(study) -> None:
        if "depth" in study.user_attrs:
            err.print(study.user_attrs["depth"]["why"], markup=False, highlight=False)
        for column, why in study.user_attrs.get("data", {}).get("dropped_columns", {}).items():
            err.print(f"warning: column {column!r} is not used: {why}", markup=False, highlight=False)
        for column, why in study.user_attrs.get("data", {}).get("grouped_columns", {}).items():
            err.print(f"warning: column {column!r} has {why}", markup=False, highlight=False)
        update(study)
        progress.start()
        progress.start_task(task)

    try:
        return run_workers(config, on_start=start, on_progress=update)
    finally:
        progress.stop()


def _print_run_summary(config, summary) -> None:
    from sweep.reading.results import format_values
    from sweep.study.summary import format_value

    out.print(
        f"Study [bold]{summary.study_name}[/] in {summary.storage}: {summary.finished} finished trials "
        f"({summary.ran_now} run now), {summary.failed} failed.",
        highlight=False,
    )
    best = summary.best
    if best is None:
        out.print("No complete trial yet.")
        return
    attrs = best.user_attrs
    out.print(f"Best trial #{best.number}: {summary.metric_name} = {format_values(best)} (validation)", highlight=False)
    if "decision_rule" in attrs:  # several classes: each one's recall and share of the decisions
        classes = [key.split(":", 1)[1] for key in attrs if key.startswith("val_recall:")]
        shown = ", ".join(
            f"{c} {format_value(attrs[f'val_recall:{c}'], 3)} ({format_value(attrs[f'val_flag_rate:{c}'], 3)})"
            for c in classes
        )
        result = f"macro-F1 {format_value(attrs.get('val_macro_f1'), 3)}; recall (flag rate) {shown}"
    else:
        result = (
            f"precision {format_value(attrs.get('val_precision'), 3)}, recall "
            f"{format_value(attrs.get('val_recall'), 3)}, flag rate {format_value(attrs.get('val_flag_rate'), 3)}"
        )
    out.print(
        "  " + ", ".join(f"{k}={format_value(v)}" for k, v in best.params.items()) + f"  -> {result}", highlight=False
    )
    storage_flag = f" --storage '{summary.storage}'"
    out.print("Next:", highlight=False)
    out.print(f"  sweep dashboard{storage_flag}", highlight=False, markup=False)
    out.print(
        f"  sweep export {summary.study_name} --out exports/{summary.study_name}{storage_flag}",
        highlight=False,
        markup=False,
    )


@app.command()
@reports_errors
def studies(storage: StorageOption = None) -> None:
    """List the studies in the storage with their trial counts and best values."""
    from sweep.reading.results import studies_table
    from sweep.study.storage import open_storage

    url = _storage_url(storage)
    out.print(_rich_table(studies_table(open_storage(url), url)))


def _rich_table(table) -> Table:
    """A results.Table as a Rich table."""
    rendered = Table(*table.columns, title=table.title)
    for row in table.rows:
        rendered.add_row(*row)
    return rendered


@app.command()
@reports_errors
def show(
    study: Annotated[str, typer.Argument(help="Study name.")],
    storage: StorageOption = None,
    top: Annotated[int, typer.Option(min=1, help="How many of the best trials to list.")] = 10,
    pick: PickOption = None,
) -> None:
    """Print the best trial of a study and its top trials (the Pareto front, for a multi-objective study)."""
    from sweep.metrics import parse_pick
    from sweep.reading.results import format_values, view_study
    from sweep.study.storage import load_study, open_storage

    url = _storage_url(storage)
    rule = parse_pick(pick)
    view = view_study(load_study(open_storage(url), study), url, top, rule)
    summary, chosen = view.summary, view.chosen
    out.print(
        f"Study [bold]{study}[/] ({summary.metric_name}, {summary.direction}): {summary.finished} finished, "
        f"{summary.failed} failed.",
        highlight=False,
    )
    if chosen is not None:
        how = f" (picked from the Pareto front: {rule})" if view.multi else ""
        out.print(f"Best trial #{chosen.number}{how}: {summary.metric_name} = {format_values(chosen)}", highlight=False)
    elif view.multi and summary.best is not None:
        out.print(f"No Pareto-front trial meets --pick {pick!r}; relax the bound", highlight=False)
    out.print(_rich_table(view.trials))
    for number, reason in view.failures:
        out.print(f"failed trial #{number}: {reason}", highlight=False)


@app.command()
@reports_errors
def export(
    study: Annotated[str, typer.Argument(help="Study name.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Directory to write the bundle to.")],
    storage: StorageOption = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite a non-empty --out directory.")] = False,
    pick: PickOption = None,
    refit: Annotated[
        str,
        typer.Option(
            help="all: train the chosen configuration(s) on all non-test rows; judged: ship the models the threshold "
            "was chosen on (a trial's own model, or a cross-validated trial's fold models), no refit; train: judged, "
            "for one trial of a single validation split.",
        ),
    ] = "all",
    ensemble: Annotated[
        str | None,
        typer.Option(
            help="What the bundle holds, averaged: auto (single, the measured default); single (one refit); seeds:K (K "
            "refits with seeds derived from the trial's); folds (a cross-validated trial's own fold models); greedy:N "
            "(greedy ensemble selection over the N best trials).",
            show_default="auto",
        ),
    ] = None,
    threshold_rule: Annotated[
        str,
        typer.Option(
            help="Where the shipped models cut: trial (the best trial's own threshold); folds (re-chosen on that "
            "trial's validation scores, best on average over its folds, as scikit-learn's TunedThresholdClassifierCV "
            "does); auto (folds where the validation rows hold 200 positives or more, else trial). A greedy "
            "ensemble chooses its own.",
        ),
    ] = "auto",
) -> None:
    """Retrain the best trial (checking its stored value), refit it (or the ensemble --ensemble names), check that it
    flags what the judged models flagged, score it once on the held-out test part and write a bundle to --out."""
    from sweep.handover.ensemble import DEFAULT_ENSEMBLE
    from sweep.handover.export import export_best
    from sweep.metrics import parse_pick

    result = export_best(
        _storage_url(storage),
        study,
        out_dir,
        force=force,
        pick=parse_pick(pick),
        refit=refit,
        ensemble=DEFAULT_ENSEMBLE if ensemble is None else ensemble,
        threshold_rule=threshold_rule,
    )
    _print_export(result, study)


def _print_export(result, study: str) -> None:
    """What `sweep export` prints: what was exported and chosen, how it was checked, and its test metrics."""
    best = result.best
    out.print(f"Exported trial #{best['trial']} of {study} to {result.out_dir}", highlight=False)
    if result.classes:
        _print_class_export(best)
    else:
        _print_choice(best)
        _print_checks(best)
        _print_test(result)
    if not result.reproduced:
        err.print(
            "warning: the retrained model does not reproduce the stored validation value exactly "
            "(different machine or device?); best.json records both",
            highlight=False,
        )


def _print_choice(best: dict) -> None:
    """The exported weight, threshold and params (a greedy ensemble's members), and its validation value."""
    own = {k: v for k, v in best["params"].items() if k not in ("minority_weight", "threshold")}
    ensemble = best["ensemble"]
    if ensemble["kind"] == "greedy":  # the best trial's weight and width, the ensemble's own threshold
        out.print(
            f"  best trial: class_weight {best['class_weight']}, "
            + ", ".join(f"{k} {v}" for k, v in own.items())
            + f"; the ensemble's threshold {best['threshold']:.4g}",
            highlight=False,
        )
        members = ", ".join(
            f"#{m['trial']} (weight {m['params']['minority_weight']:.3g}, x{m['weight']:.2f})"
            for m in ensemble["members"]
        )
        out.print(
            f"  greedy ensemble of {len(ensemble['members'])} configurations, averaged: {members}", highlight=False
        )
    else:
        out.print(
            f"  class_weight {best['class_weight']}, threshold {best['threshold']:.4g}, "
            + ", ".join(f"{k} {v}" for k, v in own.items()),
            highlight=False,
        )
    if best.get("threshold_rule"):
        out.print(f"  threshold: {best['threshold_rule']['how']}", highlight=False, markup=False)
    out.print(
        f"  validation {','.join(best['objective']['names'])} = {best['validation']['value']} "
        f"(retrained: {best['validation']['reproduced_value']})",
        highlight=False,
    )


def _print_class_export(best: dict) -> None:
    """`sweep export`'s lines for a target of several classes: the weights and rule, what was refit and checked, and
    the test metrics with the rule's gain over argmax."""

    rule, test, decision = best["decision_rule"], best["test"], best["decision"]
    weights = ", ".join(f"{name} {best['class_weight'][str(c)]:.3g}" for c, name in enumerate(best["classes"]))
    tau = f" tau {rule['tau']}" if "tau" in rule else ""
    out.print(f"  class_weight {weights}; decision rule {rule['kind']}{tau}", highlight=False, markup=False)
    out.print(
        f"  validation {','.join(best['objective']['names'])} = {best['validation']['value']} "
        f"(retrained: {best['validation']['reproduced_value']})",
        highlight=False,
    )
    out.print(
        f"  model refit on {best['refit']['rows']}; decision check "
        f"{'passed' if decision['passed'] else 'failed'}: each class's share of decisions, judged "
        f"{decision['judged_flag_rates']}, shipped {decision['shipped_flag_rates']}",
        highlight=False,
        markup=False,
    )
    if decision["fallback"]:
        err.print(f"fallback: {decision['fallback']}", highlight=False, markup=False)

    gain = test["rule_gain"]
    out.print(
        _test_figures(test, (("macro_f1", "macro f1"), ("balanced_accuracy", "balanced accuracy")))
        + f"; the rule's gain over argmax, macro-F1 {gain['macro_f1']:+.3f} "
        f"[{gain['interval'][0]:+.3f}, {gain['interval'][1]:+.3f}]",
        highlight=False,
        markup=False,
    )
    recalls = ", ".join(f"{name} {test['metrics'][f'recall:{name}']:.3f}" for name in best["classes"])
    out.print(f"  test recall per class: {recalls}", highlight=False, markup=False)


def _print_checks(best: dict) -> None:
    """What the model learned from, the ensemble, and the decision check (and its fallback)."""
    ensemble = best["ensemble"]
    out.print(
        f"  model refit on {best['refit']['rows']} ({best['refit']['counts']['rows']} rows, {best['refit']['epochs']} "
        "epochs)",
        highlight=False,
    )
    if ensemble["kind"] != "single":
        out.print(f"  ensemble {ensemble['kind']} of {ensemble['size']}: {ensemble['how_chosen']}", highlight=False)
    decision = best["decision"]
    out.print(
        f"  decision check: at threshold {decision['threshold']:.4g} the judged models flag "
        f"{decision['judged_flag_rate']:.2%} of their validation rows, the shipped ones "
        f"{decision['shipped_flag_rate']:.2%} of {decision['rows']}",
        highlight=False,
        markup=False,
    )
    if decision["fallback"]:
        err.print(f"fallback: {decision['fallback']}", highlight=False, markup=False)


def _test_figures(test: dict, shown: tuple[tuple[str, str], ...]) -> str:
    """best.json's test metrics `shown` ((key, label) pairs) with their bootstrap intervals, in one line."""
    from sweep.study.summary import format_value

    def one(name: str, label: str) -> str:
        low, high = test["intervals"][name]
        return f"{label} {format_value(test['metrics'][name], 3)} [{format_value(low, 3)}, {format_value(high, 3)}]"

    return "  test (95% bootstrap intervals): " + ", ".join(one(name, label) for name, label in shown)


def _print_test(result) -> None:
    """The test metrics with their intervals, and what the probability column means."""

    best = result.best
    shown = (
        ("precision", "precision"),
        ("recall", "recall"),
        ("f1", "f1"),
        ("flag_rate", "flag rate"),
        ("average_precision", "average precision"),
    )
    out.print(_test_figures(best["test"], shown), highlight=False, markup=False)
    raw, calibrated = (best["test"]["probability"][k] for k in ("raw score", "calibrated probability"))
    out.print(
        f"  probability: {result.calibration.describe()}; threshold {best['threshold']:.4g} on the score is "
        f"probability {best['threshold_probability']:.4g}; test Brier {raw['brier']:.4f} (raw score) -> "
        f"{calibrated['brier']:.4f}, mean {raw['mean_probability']:.4f} -> {calibrated['mean_probability']:.4f}",
        highlight=False,
        markup=False,
    )


@app.command()
@reports_errors
def report(
    study: Annotated[list[str], typer.Argument(help="One or more study names (several are put side by side).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Directory for report.md, report.html and the figures.")],
    storage: StorageOption = None,
    seeds: Annotated[
        int, typer.Option(min=1, help="Seeds per tutorial fixed-weight network (their rows are means ± sd).")
    ] = 3,
    force: Annotated[bool, typer.Option("--force", help="Overwrite a non-empty --out directory.")] = False,
    pick: PickOption = None,
) -> None:
    """Compare each study's best configuration with the tutorial's fixed weights on the held-out test rows."""
    from sweep.metrics import parse_pick
    from sweep.reading.report import write_report

    written = write_report(
        _storage_url(storage), study, out_dir, seeds=tuple(range(seeds)), force=force, pick=parse_pick(pick)
    )
    out.print(f"Wrote {written / 'report.html'} and {written / 'report.md'} (with figures)", highlight=False)


@app.command()
@reports_errors
def predict(
    bundle: Annotated[Path, typer.Argument(help="Directory written by `sweep export`.")],
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            help="CSV or Parquet table with the model's feature columns, or an .npz file whose x holds rows of the "
            "model's input shape.",
        ),
    ],
    out_file: Annotated[Path | None, typer.Option("--out", help="CSV file to write; stdout when omitted.")] = None,
    custom_objects: Annotated[
        list[str] | None,
        typer.Option(
            "--custom-objects",
            help="Importable module that registers the model's custom layers (repeatable); bundles are loaded in "
            "Keras' safe mode and never run code of their own.",
        ),
    ] = None,
) -> None:
    """Score rows with an exported bundle: one output row per input row, in order, columns probability (calibrated),
    decision (score >= the exported threshold) and score (the network's raw output); for three or more classes,
    probability_<class>, decision (the class its decision rule gives) and score_<class>."""
    from sweep.handover.bundle import predict as predict_rows

    scored = predict_rows(bundle, data, custom_objects or ())
    if out_file is None:
        scored.to_csv(sys.stdout, index=False)
        return
    scored.to_csv(out_file, index=False)
    if "probability" in scored:
        out.print(f"Wrote {len(scored)} rows ({int(scored['decision'].sum())} flagged) to {out_file}", highlight=False)
        return
    decided = ", ".join(f"{name} {n}" for name, n in scored["decision"].value_counts().sort_index().items())
    out.print(f"Wrote {len(scored)} rows (decided: {decided}) to {out_file}", highlight=False)


@app.command()
@reports_errors
def dashboard(
    storage: StorageOption = None,
    host: Annotated[
        str, typer.Option(help="Interface to bind: 127.0.0.1, ::1 or localhost; any other needs --allow-remote.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    allow_remote: Annotated[
        bool,
        typer.Option(
            "--allow-remote", help="Allow a --host others can reach; then HTTP basic auth or --read-only is required."
        ),
    ] = False,
    credentials_file: Annotated[
        Path | None,
        typer.Option(
            "--credentials-file",
            help="File holding user:password for HTTP basic auth, else the variable SWEEP_DASHBOARD_CREDENTIALS is "
            "read (same form); enforced whenever given.",
        ),
    ] = None,
    read_only: Annotated[
        bool,
        typer.Option(
            "--read-only",
            help="Refuse every request but GET/HEAD/OPTIONS (no deleting studies, writing notes or telling trials).",
        ),
    ] = False,
) -> None:
    """Start optuna-dashboard on the same storage as the sweeps. It has no login of its own, so it binds loopback
    only; --allow-remote serves others behind basic auth (put a TLS reverse proxy in front) or --read-only."""
    import os

    from sweep.reading.dashboard import dashboard_app, make_server, serve
    from sweep.reading.guard import access_summary, check_host, check_protected, read_credentials
    from sweep.study.storage import mask_url

    check_host(host, allow_remote)
    credentials = read_credentials(os.environ, credentials_file)
    check_protected(allow_remote, credentials, read_only)
    url = _storage_url(storage)
    server = make_server(dashboard_app(url, credentials=credentials, read_only=read_only), host, port)
    shown_host = f"[{host.strip('[]')}]" if ":" in host else host
    access = access_summary(credentials, read_only)
    out.print(
        f"optuna-dashboard for {mask_url(url)} at "
        f"http://{shown_host}:{server.server_port}/{'; ' + access if access else ''} (Ctrl-C to stop)",
        highlight=False,
        markup=False,
    )
    serve(server)


def main() -> None:
    """Console-script entry point."""
    app()
