"""Chaos benchmark: a Postgres of our own is stopped in the middle of a sweep of several workers and started again.

    python benchmarks/outages.py [--outages 5 30 90] [--routes direct pgbouncer] [--workers 2] [--trials 16]
        [--epochs 60] [--sqlite-workers 4] [--sqlite-trials 40] [--out FILE]

Each route runs `sweep run --workers W --population 1 --pruner none` (default heartbeat 10 s, grace period 30 s,
outage_limit 180 s) on a 3,000-row table: once without an outage (the baseline), then once per outage length. A
run's server is stopped (`pg_ctl stop -m fast`) when a quarter of the budget is COMPLETE and started again after the
outage. `direct`: the workers talk to Postgres; `pgbouncer`: to a PgBouncer (transaction pooling, its defaults:
query_wait_timeout 120 s, server_login_retry 15 s) that stays up while the server behind it restarts.

Per run: exit code; trials lost (COMPLETE before the outage and not after: must be 0); trials failed (by heartbeat,
then retried; not counting the trials a worker started after the budget was filled, which end FAIL unrun) and
still RUNNING; finished trials (must be the budget); wall time and the extra over the baseline;
how long after the server was back the last process said it was going on; the most lines any one process printed
about the outage, and how many of the processes (driver and workers) saw it. The last table measures several workers on
one SQLite file (`--sqlite-workers`, default 4): "database is locked" errors (each is waited for, sweep.study.outage,
with a line), trials and wall time, against the same run on Postgres and one worker on SQLite.

Postgres and PgBouncer come from the test helpers (tests/conftest.py: PrivatePostgres, running_pgbouncer).
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

import sqlalchemy  # noqa: E402
from common import machine  # noqa: E402
from conftest import PrivatePostgres, find_pgbouncer, make_table, running_pgbouncer, trial_states  # noqa: E402

SWEEP = str(Path(sys.executable).with_name("sweep"))


def count(url: str, query: str) -> int:
    """One count(*) read on Postgres directly."""
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as connection:
            return connection.execute(sqlalchemy.text(query)).scalar()
    finally:
        engine.dispose()


def over_budget(url: str) -> int:
    """FAIL trials that were never run: started after other workers had filled the budget (user attr over_budget)."""
    return count(url, "select count(*) from trial_user_attributes where key = 'over_budget'")


def retried(url: str) -> int:
    """Trials that are retries of a failed one (Optuna's system attribute failed_trial)."""
    return count(url, "select count(*) from trial_system_attributes where key = 'failed_trial'")


def reset(url: str) -> None:
    """Drop every study (a fresh study per run, same server)."""
    import optuna

    for name in optuna.get_all_study_names(url):
        optuna.delete_study(study_name=name, storage=url)


def command(csv: str, url: str, workers: int, trials: int, epochs: int, study: str) -> list[str]:
    return [
        SWEEP,
        "run",
        "--data",
        csv,
        "--target",
        "label",
        "--storage",
        url,
        "--study",
        study,
        "--workers",
        str(workers),
        "--population",
        "1",
        "--pruner",
        "none",
        "--epochs",
        str(epochs),
        "--trials",
        str(trials),
        "--cv",
        "0",
        "--batch-size",
        "64",
        "--hidden-width",
        "1:8",
    ]


def outage_lines(stderr: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in stderr.splitlines():
        if "unreachable" in line or "reachable again" in line:
            match = re.match(r"\[worker (\d+)\]", line)
            found.setdefault(match.group(1) if match else "driver", []).append(line)
    return found


def one_run(server: PrivatePostgres, url: str, csv: str, args, outage: float | None, folder: Path) -> dict:
    """One sweep; with `outage`, the server is stopped for that many seconds once a quarter of the budget is
    COMPLETE."""
    reset(server.url)
    started = time.monotonic()
    process = subprocess.Popen(
        command(csv, url, args.workers, args.trials, args.epochs, "chaos"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=folder,
    )
    before: dict[int, str] = {}
    back_at = None
    if outage is not None:
        while process.poll() is None:
            before = trial_states(server.url)
            if sum(state == "COMPLETE" for state in before.values()) >= max(1, args.trials // 4):
                break
            time.sleep(0.2)
        server.stop()
        time.sleep(outage)
        server.start()
        back_at = time.monotonic()
    _out, err = process.communicate(timeout=3600)
    wall = time.monotonic() - started
    if args.logs:
        args.logs.mkdir(parents=True, exist_ok=True)
        (
            args.logs / f"{'pgbouncer' if 'pgbouncer' in url else 'direct'}-{outage or 0:g}-{time.time():.0f}.stderr"
        ).write_text(err)
    after = trial_states(server.url)
    said = outage_lines(err)
    backs = [
        float(m.group(1))
        for lines in said.values()
        for line in lines
        if (m := re.search(r"reachable again after (\d+) s", line))
    ]
    return {
        "exit": process.returncode,
        "lost": sum(1 for number, state in before.items() if state == "COMPLETE" and after.get(number) != "COMPLETE"),
        "finished": sum(state in ("COMPLETE", "PRUNED") for state in after.values()),
        "failed": sum(state == "FAIL" for state in after.values()) - over_budget(server.url),  # not run, not failed
        "retried": retried(server.url),
        "running": sum(state == "RUNNING" for state in after.values()),
        "wall": wall,
        "lines": max((len(lines) for lines in said.values()), default=0),
        "processes": len(said),
        "back": None if back_at is None or not backs else max(backs) - outage,
        "errors": [line for line in err.splitlines() if line.startswith("error") or "Traceback" in line][:3],
    }


def chaos(args, csv: str, folder: Path) -> list[str]:
    rows = [
        "| route | outage | exit | trials lost | finished / budget | failed (retried) | RUNNING left | wall s | extra "
        "wall s | going on s after the server | most lines per process | seen by processes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    server = PrivatePostgres(shutil.which("initdb") or "/usr/local/bin/initdb")
    server.start()
    try:
        for route in args.routes:
            if route == "pgbouncer" and find_pgbouncer() is None:
                print("pgbouncer not installed: route skipped", file=sys.stderr)
                continue
            bouncer_folder = Path(tempfile.mkdtemp(prefix="sweep-bouncer-"))
            with (
                running_pgbouncer(server.url, bouncer_folder, 20, 120)
                if route == "pgbouncer"
                else contextlib.nullcontext((server.url,))
            ) as (url, *_):
                baseline = one_run(server, url, csv, args, None, folder)
                print(route, "baseline", baseline, flush=True)
                rows.append(
                    f"| {route} | none | {baseline['exit']} | 0 | {baseline['finished']} / {args.trials} | "
                    f"{baseline['failed']} ({baseline['retried']}) | {baseline['running']} | {baseline['wall']:.0f} | "
                    "- | - | 0 | 0 |"
                )
                for seconds in args.outages:
                    result = one_run(server, url, csv, args, seconds, folder)
                    print(route, seconds, result, flush=True)
                    back = "-" if result["back"] is None else f"{result['back']:.0f}"
                    rows.append(
                        f"| {route} | {seconds:g} s | {result['exit']} | {result['lost']} | {result['finished']} / "
                        f"{args.trials} | {result['failed']} ({result['retried']}) | {result['running']} | "
                        f"{result['wall']:.0f} | {result['wall'] - baseline['wall']:+.0f} | {back} | "
                        f"{result['lines']} | {result['processes']} of {args.workers + 1} |"
                    )
            shutil.rmtree(bouncer_folder, ignore_errors=True)
    finally:
        server.close()
    return rows


def sqlite_contention(args, csv: str, folder: Path) -> list[str]:
    """Several workers on one SQLite file against the same on Postgres, and one worker on SQLite."""
    rows = [
        "| storage | workers | trials | epochs | exit | finished | 'database is locked' (waited for) | wall s | "
        "trials/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    server = PrivatePostgres(shutil.which("initdb") or "/usr/local/bin/initdb")
    server.start()
    try:
        for name, url, workers in (
            ("SQLite", f"sqlite:///{folder / 'one-file.db'}", args.sqlite_workers),
            ("Postgres", server.url, args.sqlite_workers),
            ("SQLite", f"sqlite:///{folder / 'one-worker.db'}", 1),
        ):
            started = time.monotonic()
            done = subprocess.run(
                command(csv, url, workers, args.sqlite_trials, args.sqlite_epochs, f"contention-{workers}"),
                capture_output=True,
                text=True,
                cwd=folder,
                timeout=3600,
            )
            wall = time.monotonic() - started
            locked = sum("database is locked" in line for line in done.stderr.splitlines())
            finished = re.search(r"(\d+) finished trials", done.stdout)
            print(name, workers, done.returncode, locked, f"{wall:.1f}", flush=True)
            rows.append(
                f"| {name} | {workers} | {args.sqlite_trials} | {args.sqlite_epochs} | {done.returncode} | "
                f"{finished.group(1) if finished else '?'} | {locked} | {wall:.0f} | {args.sqlite_trials / wall:.2f} |"
            )
    finally:
        server.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outages", type=float, nargs="+", default=[5, 30, 90])
    parser.add_argument("--routes", nargs="+", default=["direct", "pgbouncer"], choices=["direct", "pgbouncer"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--sqlite-workers", type=int, default=4)
    parser.add_argument("--sqlite-trials", type=int, default=40)
    parser.add_argument("--sqlite-epochs", type=int, default=20)
    parser.add_argument("--skip-chaos", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--logs", type=Path, help="folder for each run's stderr")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="sweep-outages-"))
    csv = str(folder / "table.csv")
    make_table(rows=3000).to_csv(csv, index=False)
    lines = [f"Machine: {machine()}", "", f"Command: python benchmarks/outages.py {' '.join(sys.argv[1:])}", ""]
    if not args.skip_chaos:
        lines += chaos(args, csv, folder) + [""]
    if not args.skip_sqlite:
        lines += sqlite_contention(args, csv, folder)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
