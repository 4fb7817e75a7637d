"""Large studies: what a run's start, its per-trial bookkeeping, `sweep show`, `sweep studies`, `sweep export`
and the dashboard's study API cost in a study of 20,000 and 100,000 trials, on SQLite and on Postgres.

    nice python benchmarks/large_study.py [--sizes 20000 100000] [--backends sqlite postgres] [--layout new|old]
        [--population 32] [--json out.json] [--compare before.json] [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test]

Each (backend, size) gets a storage of its own (a SQLite file, or a Postgres database `sweep_large_<size>`
made next to the one --postgres names, dropped at the end unless --keep), holding one study:

1. A real sweep creates it: `run_sweep` on a tiny table (3,000 rows, two features, 8% positives), one
   population of --population trials, 10 epochs, pruner none. Its best trial is the study's best (the
   filled values are below it), so `sweep export` retrains a real population and checks its value.
2. The rest of the trials are filled in populations of --population, as a sweep writes them: 85% COMPLETE,
   12% PRUNED (with `pruned_at_epoch`), 3% FAIL (with `fail_reason`); each has the study's three params with
   their distributions, 10 intermediate values (fewer when pruned), a real trial's user attributes with its
   own class weight and seed, and the population attribute in --layout: `new` (member index and the first
   member's number on every member; member list, shuffle seed and rate on the first only) or `old` (every
   member holds the whole list). The fill inserts rows straight into Optuna's tables through its SQLAlchemy
   models (private names: this is a benchmark, not the package), in batches of 5,000 trials: Optuna's
   `study.add_trials` writes each trial in a transaction of its own, one statement per attribute, whose rate
   is measured first on 500 trials and printed (100,000 trials that way took too long on 2 cores). The
   fill is checked: a filled trial read back through Optuna has the params, values and attributes written.
3. Each operation runs in a fresh process, so no cache of an earlier one helps it, and reports its seconds
   and the process's peak resident memory (TensorFlow, about 0.9 GB of it, is imported before the clock
   starts for the run and export only; the other operations never import it):
   - run start: `run_sweep` with trials = finished + 11, epochs 1, population 1: seconds until the first
     trial is told (opening the study, our checks, Optuna's first read of every trial, the first trial);
   - per trial: the next 10 trials, split as benchmarks/lean_trials.py splits them (sampler = TPE's own
     calls, Optuna's ask + tell, ours = the rest, the compiled epochs apart), with two more parts taken out
     of the rest: Optuna's stale-trial check (`fail_stale_trials`, which study.optimize runs before every
     trial of a storage with heartbeats) and our trial counts (the budget checks); run end: after the last
     trial until run_sweep returns (the study note, the summary);
   - `sweep show` (sweep.reading.results.view_study as the CLI calls it), `sweep studies` (studies_table),
     `sweep export` of the best trial (export_best: retraining its population of --population, refit,
     test metrics, bundle);
   - the dashboard: sweep.reading.dashboard.dashboard_app (optuna_dashboard.wsgi on the storage, as `sweep
     dashboard` serves it) called in-process as a WSGI app: GET /api/studies, then
     /api/studies/<id>?after=0 (every trial; the response's size is printed too).
Prints markdown tables (paste them into docs/benchmarks.md); --json writes the numbers, --compare prints
them beside an earlier --json's (before/after a change).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

EXTRA_TRIALS = 10  # trials timed after the run's first
EPOCHS = 10  # of the real sweep and of every filled trial
BATCH = 5_000  # trials per insert transaction
ADD_TRIALS_SAMPLE = 500
STUDY = "large"
OPERATIONS = ("start", "show", "studies", "export", "dashboard")


def make_table(path: Path, rows: int = 3000, positive_share: float = 0.08, seed: int = 0) -> None:
    """The tests' tiny imbalanced table (two informative features f0, f1 and a 0/1 label) as a CSV file."""
    import pandas as pd
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=rows,
        n_features=2,
        n_informative=2,
        n_redundant=0,
        n_clusters_per_class=1,
        weights=[1 - positive_share, positive_share],
        class_sep=1.0,
        random_state=seed,
    )
    pd.DataFrame({"f0": X[:, 0], "f1": X[:, 1], "label": y}).to_csv(path, index=False)


def sweep_config(folder: Path, url: str, **overrides):
    from sweep.config import resolve_config

    values = dict(
        data=str(folder / "tiny.csv"),
        target="label",
        storage=url,
        study=STUDY,
        epochs=EPOCHS,
        batch_size=64,
        hidden_width="1:8",
        seed=0,
        cv=0,
        pruner="none",
    )
    return resolve_config(values | overrides, env={})


# --- storages -------------------------------------------------------------------------------------------


def storage_url(backend: str, size: int, folder: Path, postgres: str) -> str:
    if backend == "sqlite":
        return f"sqlite:///{folder / f'large-{size}.db'}"
    import sqlalchemy

    return (
        sqlalchemy.engine.make_url(postgres).set(database=f"sweep_large_{size}").render_as_string(hide_password=False)
    )


def fresh_postgres_database(url: str, drop_only: bool = False) -> None:
    """Drop the database `url` names if it exists, then create it empty (unless `drop_only`)."""
    import sqlalchemy

    target = sqlalchemy.engine.make_url(url)
    engine = sqlalchemy.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
        if not drop_only:
            connection.execute(sqlalchemy.text(f'CREATE DATABASE "{target.database}"'))
    engine.dispose()


def postgres_version(url: str) -> str:
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    with engine.connect() as connection:
        version = connection.execute(sqlalchemy.text("show server_version")).scalar()
    engine.dispose()
    return version


# --- the fill -------------------------------------------------------------------------------------------


def population_attrs(
    layout: str, study: str, first: int, folds: int, shuffle_seed: int, rate: float, members: list[dict]
) -> list[dict]:
    """Each member's `population` user attribute, as a population round writes it in `layout`."""
    head = {"id": f"{study}:{first}", "size": len(members), "folds": folds}
    described = {"shuffle_seed": shuffle_seed, "learning_rate": rate, "members": members}
    if layout == "old":
        return [head | described | {"member": index} for index in range(len(members))]
    return [
        head | {"member": index, "first_trial": first} | (described if index == 0 else {})
        for index in range(len(members))
    ]


def filled_trials(study, config, start_number: int, count: int, population: int, layout: str, seed: int = 0):
    """`count` trials numbered from `start_number`, in populations of `population`, as dicts of what a sweep
    stores: number, state, value, params (value, distribution), intermediate values, user attributes."""
    import numpy as np
    from optuna.trial import TrialState

    from sweep.space import trial_seed
    from sweep.study.rounds import population_rate

    rng = np.random.default_rng(seed)
    real = [t for t in study.trials if t.state == TrialState.COMPLETE]
    best = max(t.value for t in real)
    template = real[0]
    distributions = template.distributions
    rate = population_rate(config)
    out = []
    for first in range(start_number, start_number + count, population):
        numbers = list(range(first, min(first + population, start_number + count)))
        members, rows = [], []
        for number in numbers:
            params = {}
            for name, distribution in distributions.items():
                if name == "hidden_width":
                    params[name] = int(rng.integers(distribution.low, distribution.high + 1))
                elif distribution.log:
                    params[name] = float(np.exp(rng.uniform(np.log(distribution.low), np.log(distribution.high))))
                else:
                    params[name] = float(rng.uniform(distribution.low, distribution.high))
            member_seed = trial_seed(config.seed, number)
            members.append(
                {
                    "trial": number,
                    "hidden_width": params["hidden_width"],
                    "minority_weight": params["minority_weight"],
                    "seed": member_seed,
                    "learning_rate": None,
                }
            )
            copied = real[int(rng.integers(len(real)))].user_attrs
            attrs = {key: value for key, value in copied.items() if key != "population"}
            attrs["class_weight"] = {"0": 1.0, "1": params["minority_weight"]}
            attrs["train_settings"] = dict(copied["train_settings"], seed=member_seed)
            draw = rng.uniform()
            steps = EPOCHS
            if draw < 0.03:
                state = TrialState.FAIL
                attrs = {key: value for key, value in attrs.items() if not key.startswith("val_")}
                attrs["fail_reason"] = f"training loss became nan at epoch {int(rng.integers(1, EPOCHS + 1))}"
                steps, value = 0, None
            elif draw < 0.15:
                state = TrialState.PRUNED
                steps = int(rng.integers(2, EPOCHS))
                attrs |= {"pruned_at_epoch": steps, "epochs_run": steps}
                value = None
            else:
                state, value = TrialState.COMPLETE, float(best * rng.uniform(0.2, 0.95))
            curve = [float(best * rng.uniform(0.1, 0.95)) for _ in range(steps)]
            if value is not None:
                attrs["val_f1"] = value
                if curve:
                    curve[-1] = value
            rows.append(
                {
                    "number": number,
                    "state": state,
                    "value": value,
                    "params": params,
                    "intermediate": curve,
                    "attrs": attrs,
                }
            )
        shuffle_seed = trial_seed(config.seed, first)
        for row, attribute in zip(
            rows, population_attrs(layout, study.study_name, first, 1, shuffle_seed, rate, members)
        ):
            row["attrs"]["population"] = attribute
        out.extend(rows)
    return out, distributions


def insert_trials(url: str, study_name: str, rows: list[dict], distributions: dict) -> None:
    """Write the trials straight into Optuna's tables, one transaction per BATCH trials."""
    import sqlalchemy
    from optuna.distributions import distribution_to_json
    from optuna.storages._rdb import models

    engine = sqlalchemy.create_engine(url)
    distribution_json = {name: distribution_to_json(d) for name, d in distributions.items()}
    started = datetime.now()
    with engine.begin() as connection:
        study_id = connection.execute(
            sqlalchemy.select(models.StudyModel.study_id).where(models.StudyModel.study_name == study_name)
        ).scalar_one()
        next_id = (
            connection.execute(sqlalchemy.select(sqlalchemy.func.max(models.TrialModel.trial_id))).scalar() or 0
        ) + 1
    for offset in range(0, len(rows), BATCH):
        trials, values, params, intermediate, attrs = [], [], [], [], []
        for row in rows[offset : offset + BATCH]:
            trial_key = next_id
            next_id += 1
            begun = started + timedelta(seconds=row["number"])
            trials.append(
                {
                    "trial_id": trial_key,
                    "number": row["number"],
                    "study_id": study_id,
                    "state": row["state"],
                    "datetime_start": begun,
                    "datetime_complete": begun + timedelta(seconds=1),
                }
            )
            if row["value"] is not None:
                stored, kind = models.TrialValueModel.value_to_stored_repr(row["value"])
                values.append({"trial_id": trial_key, "objective": 0, "value": stored, "value_type": kind})
            for name, value in row["params"].items():
                params.append(
                    {
                        "trial_id": trial_key,
                        "param_name": name,
                        "param_value": distributions[name].to_internal_repr(value),
                        "distribution_json": distribution_json[name],
                    }
                )
            for step, value in enumerate(row["intermediate"], start=1):
                stored, kind = models.TrialIntermediateValueModel.intermediate_value_to_stored_repr(value)
                intermediate.append(
                    {"trial_id": trial_key, "step": step, "intermediate_value": stored, "intermediate_value_type": kind}
                )
            for key, value in row["attrs"].items():
                attrs.append({"trial_id": trial_key, "key": key, "value_json": json.dumps(value)})
        with engine.begin() as connection:
            for model, batch in (
                (models.TrialModel, trials),
                (models.TrialValueModel, values),
                (models.TrialParamModel, params),
                (models.TrialIntermediateValueModel, intermediate),
                (models.TrialUserAttributeModel, attrs),
            ):
                if batch:
                    connection.execute(sqlalchemy.insert(model.__table__), batch)
    if engine.dialect.name == "postgresql":  # explicit ids: move the sequence past them
        with engine.begin() as connection:
            connection.execute(
                sqlalchemy.text(
                    "SELECT setval(pg_get_serial_sequence('trials', 'trial_id'), (SELECT max(trial_id) FROM trials))"
                )
            )
            # The planner's statistics, as autovacuum keeps them for a study that grew trial by trial: without them,
            # right after a bulk insert, Postgres reads a range of trial ids through the study_id index (every row of
            # the study) instead of the primary key (EXPLAIN ANALYZE at 100,000 trials: 6 ms against 0.03 ms).
            connection.execute(sqlalchemy.text("ANALYZE"))
    engine.dispose()


def add_trials_rate(url: str, rows: list[dict], distributions: dict) -> float:
    """Seconds per trial of Optuna's own study.add_trials for `rows`, into a scratch study deleted after."""
    import optuna

    study = optuna.create_study(storage=url, study_name="add-trials-rate", direction="maximize")
    made = [
        optuna.trial.create_trial(
            state=row["state"],
            value=row["value"],
            params=row["params"],
            distributions=distributions,
            user_attrs=row["attrs"],
            intermediate_values=dict(enumerate(row["intermediate"], start=1)),
        )
        for row in rows
    ]
    started = time.perf_counter()
    study.add_trials(made)
    seconds = (time.perf_counter() - started) / len(made)
    optuna.delete_study(study_name="add-trials-rate", storage=url)
    return seconds


def check_fill(url: str, row: dict) -> None:
    """A filled trial read back through Optuna holds what was written."""
    import optuna

    study = optuna.load_study(study_name=STUDY, storage=url)
    storage = study._storage
    trial = storage.get_trial(storage.get_trial_id_from_study_id_trial_number(study._study_id, row["number"]))
    assert trial.state == row["state"] and trial.value == row["value"], (trial.state, trial.value, row)
    assert trial.params == row["params"] and trial.user_attrs == row["attrs"], trial.user_attrs
    assert list(trial.intermediate_values.values()) == row["intermediate"]


def build(url: str, folder: Path, size: int, population: int, layout: str) -> dict:
    """The study of `size` trials at `url`: a real sweep's population, then the fill. Returns fill facts."""
    import optuna
    import sqlalchemy

    from sweep.study.runner import run_sweep

    started = time.perf_counter()
    run_sweep(sweep_config(folder, url, trials=population, population=population))
    real = time.perf_counter() - started
    study = optuna.load_study(study_name=STUDY, storage=url)
    config = sweep_config(folder, url, trials=population, population=population)
    rows, distributions = filled_trials(study, config, len(study.trials), size - len(study.trials), population, layout)
    rate = add_trials_rate(url, rows[:ADD_TRIALS_SAMPLE], distributions)
    started = time.perf_counter()
    insert_trials(url, STUDY, rows, distributions)
    filled = time.perf_counter() - started
    check_fill(url, rows[-1])
    engine = sqlalchemy.create_engine(url)
    with engine.connect() as connection:
        attrs = connection.execute(
            sqlalchemy.text("SELECT sum(length(value_json)) FROM trial_user_attributes")
        ).scalar()
        members = connection.execute(
            sqlalchemy.text("SELECT sum(length(value_json)) FROM trial_user_attributes WHERE key = 'population'")
        ).scalar()
    engine.dispose()
    return {
        "real sweep s": real,
        "add_trials s/trial": rate,
        "fill s": filled,
        "user attr bytes/trial": attrs / size,
        "population attr bytes/trial": members / size,
    }


# --- the operations, each in a process of its own -------------------------------------------------------


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def op_start(url: str, folder: Path) -> dict:
    from lean_trials import Clock
    from optuna.trial import TrialState

    from sweep.study.runner import run_sweep
    from sweep.study.storage import load_study, open_storage
    from sweep.study.summary import BUDGET_STATES, count_trials

    finished = count_trials(load_study(open_storage(url), STUDY), BUDGET_STATES)
    config = sweep_config(folder, url, trials=finished + 1 + EXTRA_TRIALS, epochs=1, population=1)
    clock = Clock()
    clock.install()
    import optuna

    import sweep.study.optuna_private

    optuna.storages.fail_stale_trials = clock.timed("stale check", optuna.storages.fail_stale_trials)
    sweep.study.queries.count_trials = clock.timed("counts", sweep.study.queries.count_trials)
    if hasattr(sweep.study.optuna_private, "TrialCounts"):  # after the change: the budget's counts go through it
        counts = sweep.study.queries.TrialCounts
        counts.__call__ = clock.timed("counts", counts.__call__)
    stamps = []
    started = time.perf_counter()
    run_sweep(
        config, callbacks=[lambda _study, trial: stamps.append((time.perf_counter(), dict(clock.seconds), trial.state))]
    )
    ended = time.perf_counter()
    (first, at_first, _), (last, at_last, _) = stamps[0], stamps[-1]
    timed = len(stamps) - 1
    names = ("epochs", "sampler", "ask/tell", "stale check", "counts")
    parts = {name: (at_last.get(name, 0.0) - at_first.get(name, 0.0)) / timed for name in names}
    per_trial = (last - first) / timed
    return parts | {
        "start": first - started,
        "per trial": per_trial,
        "ours": per_trial - sum(parts.values()),
        "end": ended - last,
        "complete": sum(state == TrialState.COMPLETE for _, _, state in stamps),
        "peak MB": peak_mb(),
    }


def op_show(url: str, folder: Path) -> dict:
    from sweep.reading.results import view_study
    from sweep.study.storage import load_study, open_storage

    started = time.perf_counter()
    view = view_study(load_study(open_storage(url), STUDY), url)
    return {
        "seconds": time.perf_counter() - started,
        "rows": len(view.trials.rows),
        "failures": len(view.failures),
        "peak MB": peak_mb(),
    }


def op_studies(url: str, folder: Path) -> dict:
    from sweep.reading.results import studies_table
    from sweep.study.storage import open_storage

    started = time.perf_counter()
    table = studies_table(open_storage(url), url)
    return {"seconds": time.perf_counter() - started, "rows": len(table.rows), "peak MB": peak_mb()}


def op_export(url: str, folder: Path) -> dict:
    from sweep.handover.export import export_best

    started = time.perf_counter()
    result = export_best(url, STUDY, folder / "bundle", force=True)
    return {
        "seconds": time.perf_counter() - started,
        "reproduced": result.reproduced,
        "trial": result.best["trial"],
        "peak MB": peak_mb(),
    }


def op_dashboard(url: str, folder: Path) -> dict:
    import wsgiref.util

    from sweep.reading.dashboard import dashboard_app

    app = dashboard_app(url)

    def get(path: str, query: str = "") -> tuple[float, bytes]:
        environ: dict = {}
        wsgiref.util.setup_testing_defaults(environ)
        environ.update(PATH_INFO=path, QUERY_STRING=query, REQUEST_METHOD="GET")
        statuses = []
        started = time.perf_counter()
        body = b"".join(app(environ, lambda status, headers, exc_info=None: statuses.append(status)))
        seconds = time.perf_counter() - started
        assert statuses[0].startswith("200"), statuses
        return seconds, body

    studies_seconds, body = get("/api/studies")
    study_id = next(s["study_id"] for s in json.loads(body)["study_summaries"] if s["study_name"] == STUDY)
    detail_seconds, body = get(f"/api/studies/{study_id}", "after=0")
    return {
        "studies": studies_seconds,
        "study": detail_seconds,
        "study MB": len(body) / 1e6,
        "trials": len(json.loads(body)["trials"]),
        "peak MB": peak_mb(),
    }


def child(operation: str, url: str, folder: Path) -> None:
    import logging

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("sweep").setLevel(logging.WARNING)
    if operation in ("build", "start", "export"):
        from sweep.runtime import tensorflow

        tensorflow()  # imported before any clock starts
    result = globals()[f"op_{operation}"](url, folder)
    print("RESULT " + json.dumps(result), flush=True)


def op_build(url: str, folder: Path) -> dict:
    size, population, layout = json.loads((folder / "build.json").read_text())
    return build(url, folder, size, population, layout)


def measure(operation: str, url: str, folder: Path) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--child", operation, "--url", url, "--folder", str(folder)],
        capture_output=True,
        text=True,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{operation} on {url} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix("RESULT "))


# --- tables ---------------------------------------------------------------------------------------------


ROWS = (
    ("run start: until the first trial is told (s)", "start", "start"),
    ("per trial after it (s)", "start", "per trial"),
    ("... sampler (TPE's own calls)", "start", "sampler"),
    ("... Optuna's ask + tell", "start", "ask/tell"),
    ("... Optuna's stale-trial check", "start", "stale check"),
    ("... compiled epochs", "start", "epochs"),
    ("... ours: counting trials (budget checks)", "start", "counts"),
    ("... ours: the rest", "start", "ours"),
    ("run end: last trial to return (study note, summary) (s)", "start", "end"),
    ("run: peak memory (MB)", "start", "peak MB"),
    ("`sweep show` (s)", "show", "seconds"),
    ("`sweep show`: peak memory (MB)", "show", "peak MB"),
    ("`sweep studies` (s)", "studies", "seconds"),
    ("`sweep export` of the best trial (s)", "export", "seconds"),
    ("dashboard GET /api/studies (s)", "dashboard", "studies"),
    ("dashboard GET /api/studies/<id>?after=0 (s)", "dashboard", "study"),
    ("... its response (MB)", "dashboard", "study MB"),
    ("dashboard: peak memory (MB)", "dashboard", "peak MB"),
    ("fill: population attribute (bytes a trial)", "fill", "population attr bytes/trial"),
    ("fill: all user attributes (bytes a trial)", "fill", "user attr bytes/trial"),
    ("fill: Optuna's add_trials (s a trial)", "fill", "add_trials s/trial"),
    ("fill: direct inserts (s, all trials)", "fill", "fill s"),
)


def cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:,.1f}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def print_table(results: dict, before: dict | None = None) -> None:
    columns = [(backend, size) for backend in results for size in results[backend]]
    names = {"sqlite": "SQLite", "postgres": "Postgres"}
    header = [f"{names[b]} {int(s):,}" for b, s in columns]
    print("| operation | " + " | ".join(header) + " |")
    print("|---|" + "---|" * len(columns))
    for label, operation, key in ROWS:
        cells = []
        for backend, size in columns:
            now = results[backend][size].get(operation, {}).get(key)
            if before is not None:
                was = before.get(backend, {}).get(size, {}).get(operation, {}).get(key)
                cells.append(f"{cell(was)} -> {cell(now)}")
            else:
                cells.append(cell(now))
        print(f"| {label} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"])
    parser.add_argument(
        "--layout", default="new", choices=["new", "old"], help="population attributes of the filled trials"
    )
    parser.add_argument(
        "--population", type=int, default=32, help="members per population (the real one and the filled ones)"
    )
    parser.add_argument("--operations", nargs="+", default=list(OPERATIONS), choices=OPERATIONS)
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--json", type=Path, help="write the numbers here")
    parser.add_argument("--compare", type=Path, help="an earlier --json: print 'before -> now' cells")
    parser.add_argument("--keep", action="store_true", help="keep the Postgres databases")
    parser.add_argument("--child")
    parser.add_argument("--url")
    parser.add_argument("--folder", type=Path)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.url, args.folder)
        return
    from common import machine

    line = f"Machine: {machine()}"
    if "postgres" in args.backends:
        line += f"; Postgres {postgres_version(args.postgres)} on 127.0.0.1"
    print(line + f"; layout {args.layout}, populations of {args.population}\n", flush=True)
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_table(folder / "tiny.csv")
        for backend in args.backends:
            for size in args.sizes:
                url = storage_url(backend, size, folder, args.postgres)
                if backend == "postgres":
                    fresh_postgres_database(url)
                began = time.perf_counter()
                (folder / "build.json").write_text(json.dumps([size, args.population, args.layout]))
                found = {"fill": measure("build", url, folder)}  # in a process of its own, as each operation
                print(f"{backend} {size:,}: filled {found['fill']}", flush=True)
                for operation in args.operations:
                    found[operation] = measure(operation, url, folder)
                    print(f"{backend} {size:,}: {operation} {found[operation]}", flush=True)
                results.setdefault(backend, {})[str(size)] = found
                print(f"{backend} {size:,}: {time.perf_counter() - began:.0f} s in all", flush=True)
                if backend == "postgres" and not args.keep:
                    fresh_postgres_database(url, drop_only=True)
                elif backend == "sqlite":
                    for path in folder.glob(f"large-{size}.db*"):
                        path.unlink()
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    print()
    print_table(results, json.loads(args.compare.read_text()) if args.compare else None)


if __name__ == "__main__":
    main()
