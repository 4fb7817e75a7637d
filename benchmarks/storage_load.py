"""Storage load: N light client processes put a real trial's storage traffic on one study, on Postgres.

    python benchmarks/storage_load.py [--clients 8 32 128] [--modes pool nullpool proxy bouncer] [--trials 32]
        [--seconds 75] [--bouncer-pools 20 40] [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test]

No TensorFlow: each client (a forked process) runs the storage calls of one single trial of `sweep run`
in a loop, back to back, with no training in between (so this is the most a study can be asked for,
not what real workers ask): the budget check, ask (TPE, multivariate, as the sweep's sampler), the three
params (sweep.space.suggest), the heartbeat stamp, the five set-up user attributes, 50 epochs of
report + should_prune (MedianPruner; the trial is never stopped, so every trial costs the same), the 12
result attributes, tell (the budget check one COUNT, each group of attributes one transaction, as sweep
does them: sweep.study.queries.count_trials and set_user_attrs). The study's budget is `--trials` for
every N (so with many clients most of them race for the last places, as workers do at the end of a
sweep); a run stops at the budget or after `--seconds`. Errors (e.g. "too many clients" past Postgres'
max_connections) are counted, the client waits 0.5 s and goes on.

Modes: `pool` is sweep.study.storage.open_storage (SQLAlchemy's QueuePool, pre-ping, heartbeats), `nullpool`
the same with NullPool (a connection per storage call, none held idle), `proxy` Optuna's gRPC storage
proxy (one server process holding the database connections; clients speak gRPC and record no heartbeat),
`bouncer` open_storage through a local PgBouncer (the `pgbouncer` binary, Debian's package) in transaction
pooling mode started for the run (generated pgbouncer.ini and userlist in a temporary folder, 127.0.0.1 on a
free port, max_client_conn 1000, one row per --bouncer-pools default_pool_size), URL option ?pgbouncer=1.
Per row: trials/s, tell latency p50/p99, the most connections the server held for the run, errors, and
whether the budget came out exact (finished == budget, none RUNNING, every told trial complete with its
50 reports). For `bouncer` the connections column also gives PgBouncer's most client connections and most
clients waiting for a server connection (its SHOW POOLS). A last table asks each mode whether a client
killed mid-trial is caught as stale (by a storage of the same mode where it records heartbeats: through
PgBouncer for `bouncer`, on Postgres directly otherwise) and whether its retry then completes.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
import warnings
from pathlib import Path

import numpy as np
import optuna
import sqlalchemy
from optuna.trial import TrialState

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

from sweep.config import resolve_config  # noqa: E402
from sweep.metrics import metrics  # noqa: E402
from sweep.space import suggest  # noqa: E402
from sweep.study.optuna_private import heartbeat_enabled, record_heartbeat, set_user_attrs, storage_of, trial_id  # noqa: E402
from sweep.study.runner import Budget, make_pruner  # noqa: E402
from sweep.study.storage import open_storage  # noqa: E402
from sweep.study.summary import BUDGET_STATES, count_trials  # noqa: E402

EPOCHS = 50
HEARTBEAT, GRACE = 10, 30  # the sweep's defaults
STALE_HEARTBEAT, STALE_GRACE = 1, 3  # the stale check's, to keep it short
CONFIG = resolve_config({"epochs": EPOCHS}, env={})
_y = np.r_[np.zeros(180), np.ones(20)]
RESULT_ATTRS = {f"val_{k}": v for k, v in metrics(_y, np.random.default_rng(0).random(200), 0.5).items()} | {
    "train_seconds": 1.0,
    "epochs_run": EPOCHS,
}


def tagged(url: str, tag: str) -> str:
    return url + ("&" if "?" in url else "?") + f"application_name={tag}"


def open_mode(mode: str, url: str, proxy_port: int | None, heartbeat: int = HEARTBEAT, grace: int = GRACE):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if mode in ("pool", "bouncer"):  # a bouncer URL carries ?pgbouncer=1
            return open_storage(url, heartbeat, grace)
        if mode == "nullpool":
            retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2)
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs={"poolclass": sqlalchemy.pool.NullPool},
                heartbeat_interval=heartbeat,
                grace_period=grace,
                heartbeat_stale_trial_callback=retry,
            )
        return optuna.storages.GrpcStorageProxy(host="127.0.0.1", port=proxy_port)


def one_trial(study: optuna.Study, budget: Budget, latencies: list, hold: threading.Event | None = None) -> str:
    """The storage calls of one single trial of `sweep run` (trial.trial_function), without training."""
    if count_trials(study, Budget.COVERING) >= budget.total:
        return "full"
    trial = study.ask()
    try:
        if not budget.admits(trial):
            set_user_attrs(trial, {"over_budget": True})
            study.tell(trial, state=TrialState.FAIL)
            return "over"
        storage = storage_of(study)
        if heartbeat_enabled(storage):
            record_heartbeat(storage, trial_id(trial))
        params = suggest(trial, CONFIG)
        set_user_attrs(
            trial,
            {
                "worker": f"{socket.gethostname()}:{os.getpid()}",
                "train_settings": {"epochs": EPOCHS, "batch_size": 100},
                "class_weight": {"0": 1.0, "1": params.minority_weight},
                "device": "cpu",
                "threads": {"intra_op": 1, "inter_op": 1},
            },
        )
        for epoch in range(1, EPOCHS + 1):
            trial.report(params.threshold * epoch / EPOCHS, epoch)
            trial.should_prune()
            if hold is not None and epoch == 2:
                hold.set()
                time.sleep(3600)  # the stale check kills the process here, mid-trial
        set_user_attrs(trial, RESULT_ATTRS)
        started = time.perf_counter()
        study.tell(trial, params.threshold)
        latencies.append(time.perf_counter() - started)
        return "told"
    except BaseException:
        try:
            study.tell(trial, state=TrialState.FAIL)
        except Exception:
            pass
        raise


def client(mode, url, proxy_port, study_name, total, index, go, deadline_box, out) -> None:
    latencies, told, errors, first_error = [], 0, 0, ""
    study = None
    go.wait()
    deadline = deadline_box.value
    while time.time() < deadline:
        try:
            if study is None:
                study = optuna.load_study(
                    study_name=study_name,
                    storage=open_mode(mode, url, proxy_port),
                    sampler=optuna.samplers.TPESampler(seed=index, multivariate=True),
                    pruner=make_pruner(CONFIG.pruner_spec, EPOCHS),
                )
            outcome = one_trial(study, Budget(total), latencies)
            if outcome == "told":
                told += 1
            elif outcome == "full":
                break
        except Exception as exc:
            errors += 1
            first_error = (
                first_error
                or f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:120] if str(exc).strip() else ''}"
            )
            time.sleep(0.5)
    out.put((told, latencies, errors, first_error))


def start_proxy(url: str, port: int) -> subprocess.Popen:
    code = (
        "import sys, warnings, optuna; warnings.simplefilter('ignore'); "
        "from optuna.storages import RDBStorage, run_grpc_proxy_server; "
        f"run_grpc_proxy_server(optuna.storages.get_storage(RDBStorage({url!r}, engine_kwargs={{'pool_pre_ping': "
        f"True}})), host='127.0.0.1', port={port})"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("the gRPC proxy did not start")


class Bouncer:
    """A pgbouncer process in transaction pooling mode in front of the Postgres at `url`, for one run.

    Its server connections carry application_name `tag` (so ConnectionCounter counts them); `url` is the
    clients' URL (with ?pgbouncer=1), `admin` a psycopg conninfo of its admin console (SHOW POOLS)."""

    def __init__(self, url: str, tag: str, pool_size: int) -> None:
        binary = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/usr/local/sbin")
        if binary is None:
            raise SystemExit("mode bouncer needs the pgbouncer binary (apt-get install pgbouncer)")
        target = sqlalchemy.engine.make_url(url)
        user = target.username or "postgres"
        self.folder = Path(tempfile.mkdtemp(prefix="storage-load-bouncer-"))
        port = free_port()
        server = f"host={target.host} port={target.port or 5432} dbname={target.database} application_name={tag}"
        (self.folder / "userlist.txt").write_text(f'"{user}" ""\n')
        (self.folder / "pgbouncer.ini").write_text(
            textwrap.dedent(f"""\
            [databases]
            {target.database} = {server}{f" password={target.password}" if target.password else ""}
            [pgbouncer]
            listen_addr = 127.0.0.1
            listen_port = {port}
            unix_socket_dir =
            auth_type = trust
            auth_file = {self.folder / "userlist.txt"}
            admin_users = {user}
            pool_mode = transaction
            max_client_conn = 1000
            default_pool_size = {pool_size}
            """)
        )
        # PgBouncer refuses to run as root; -u drops to nobody after it has read its files.
        command = [binary, *(["-u", "nobody"] if os.geteuid() == 0 else []), str(self.folder / "pgbouncer.ini")]
        with open(self.folder / "pgbouncer.log", "wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.url = (
            target.set(host="127.0.0.1", port=port)
            .update_query_dict({"pgbouncer": "1"})
            .render_as_string(hide_password=False)
        )
        self.admin = f"host=127.0.0.1 port={port} user={user} dbname=pgbouncer"
        deadline = time.time() + 15
        while time.time() < deadline and self.process.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"pgbouncer did not start: {(self.folder / 'pgbouncer.log').read_text()[-500:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        shutil.rmtree(self.folder, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ConnectionCounter(threading.Thread):
    """Samples, every 0.25 s, the server connections whose application_name is the run's tag; keeps the most."""

    def __init__(self, url: str, tag: str, bouncer_admin: str | None = None) -> None:
        super().__init__(daemon=True)
        self.engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
        self.tag, self.most, self.stopped = tag, 0, threading.Event()
        self.bouncer_admin, self.clients, self.waiting = bouncer_admin, 0, 0

    def run(self) -> None:
        import psycopg

        admin = (
            psycopg.connect(self.bouncer_admin, autocommit=True, prepare_threshold=None) if self.bouncer_admin else None
        )
        with self.engine.connect() as connection:
            while not self.stopped.wait(0.25):
                found = connection.execute(
                    sqlalchemy.text("select count(*) from pg_stat_activity where application_name = :t"),
                    {"t": self.tag},
                ).scalar()
                connection.commit()
                self.most = max(self.most, found)
                if admin is not None:  # SHOW POOLS: clients with a server connection now, clients waiting for one
                    cursor = admin.execute("SHOW POOLS")
                    names = [column.name for column in cursor.description]
                    for row in cursor.fetchall():
                        pool = dict(zip(names, row))
                        if pool["database"] != "pgbouncer":
                            self.clients = max(self.clients, pool["cl_active"] + pool["cl_waiting"])
                            self.waiting = max(self.waiting, pool["cl_waiting"])
        if admin is not None:
            admin.close()

    def stop(self) -> int:
        self.stopped.set()
        self.join()
        self.engine.dispose()
        return self.most


def run_one(mode: str, url: str, clients: int, total: int, seconds: float, pool_size: int | None = None) -> str:
    tag = f"load-{uuid.uuid4().hex[:8]}"
    study_name = tag
    optuna.create_study(storage=url, study_name=study_name, direction="maximize")
    port = free_port() if mode == "proxy" else None
    proxy = start_proxy(tagged(url, tag), port) if port else None
    bouncer = Bouncer(url, tag, pool_size) if mode == "bouncer" else None
    client_url = tagged(bouncer.url if bouncer else url, tag)
    context = multiprocessing.get_context("fork")
    go, out = context.Event(), context.Queue()
    deadline_box = context.Value("d", 0.0)
    processes = [
        context.Process(target=client, args=(mode, client_url, port, study_name, total, i, go, deadline_box, out))
        for i in range(clients)
    ]
    for process in processes:
        process.start()
    counter = ConnectionCounter(url, tag, bouncer.admin if bouncer else None)
    counter.start()
    started = time.time()
    deadline_box.value = started + seconds
    go.set()
    results = [out.get(timeout=seconds + 120) for _ in processes]
    wall = time.time() - started
    for process in processes:
        process.join(timeout=30)
    held = counter.stop()
    if proxy is not None:
        os.killpg(proxy.pid, signal.SIGTERM)
        proxy.wait(timeout=30)
    if bouncer is not None:
        bouncer.stop()
        held = f"{held} (clients {counter.clients}, {counter.waiting} waiting)"
        mode = f"bouncer, pool {pool_size}"
    study = optuna.load_study(study_name=study_name, storage=url)
    trials = study.get_trials(deepcopy=False)
    finished = [t for t in trials if t.state in BUDGET_STATES]
    told = sum(r[0] for r in results)
    latencies = sorted(x for r in results for x in r[1])
    errors = sum(r[2] for r in results)
    first_error = next((r[3] for r in results if r[3]), "")
    running = sum(t.state == TrialState.RUNNING for t in trials)
    intact = told == len(finished) and all(len(t.intermediate_values) == EPOCHS for t in finished)
    exact = len(finished) == total and running == 0 and intact
    optuna.delete_study(study_name=study_name, storage=url)
    p50 = 1000 * statistics.median(latencies) if latencies else float("nan")
    p99 = 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] if latencies else float("nan")
    verdict = "yes" if exact else f"no: {len(finished)}/{total} finished, {running} running, told {told}"
    if not exact and wall >= seconds:
        verdict += f" (stopped at the {seconds:.0f} s limit)"
    return (
        f"| {mode} | {clients} | {len(finished)} | {wall:.0f} | {len(finished) / wall:.1f} | {p50:.0f} | {p99:.0f} | "
        f"{held} | {errors} | {verdict} | {first_error} |"
    )


def stale_check(mode: str, url: str, pool_size: int = 20) -> str:
    """Kill a client mid-trial; after the grace period, does fail_stale_trials fail it, and does its retry complete?

    The check (and the retry) run where the mode records heartbeats: through PgBouncer for `bouncer`,
    through open_storage on Postgres directly otherwise (the proxy's clients record none)."""
    tag = f"stale-{uuid.uuid4().hex[:8]}"
    optuna.create_study(storage=url, study_name=tag, direction="maximize")
    port = free_port() if mode == "proxy" else None
    proxy = start_proxy(url, port) if port else None
    bouncer = Bouncer(url, tag, pool_size) if mode == "bouncer" else None
    client_url = bouncer.url if bouncer else url
    context = multiprocessing.get_context("fork")
    hold = context.Event()

    def victim() -> None:
        study = optuna.load_study(
            study_name=tag, storage=open_mode(mode, client_url, port, STALE_HEARTBEAT, STALE_GRACE)
        )
        one_trial(study, Budget(10), [], hold)

    process = context.Process(target=victim)
    process.start()
    hold.wait(timeout=60)
    process.kill()
    process.join()
    time.sleep(STALE_GRACE + 2)
    checker = optuna.load_study(
        study_name=tag,
        storage=open_storage(client_url, STALE_HEARTBEAT, STALE_GRACE),
        pruner=make_pruner(CONFIG.pruner_spec, EPOCHS),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(checker)
    state = optuna.load_study(study_name=tag, storage=url).trials[0].state
    retried = "no retry queued"
    if any(t.state == TrialState.WAITING for t in checker.get_trials(deepcopy=False)):
        one_trial(checker, Budget(10), [])  # ask() takes the queued retry first
        retry = [
            t for t in optuna.load_study(study_name=tag, storage=url).trials if t.system_attrs.get("failed_trial") == 0
        ]
        retried = f"yes, trial #{retry[0].number} {retry[0].state.name}" if retry else "no"
    if proxy is not None:
        os.killpg(proxy.pid, signal.SIGTERM)
        proxy.wait(timeout=30)
    if bouncer is not None:
        bouncer.stop()
    optuna.delete_study(study_name=tag, storage=url)
    caught = (
        "yes"
        if state == TrialState.FAIL
        else f"no (still {state.name} {STALE_GRACE + 2} s after, grace {STALE_GRACE} s)"
    )
    return f"| {mode} | {caught} | {retried} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[8, 32, 128])
    parser.add_argument(
        "--modes", nargs="+", default=["pool", "nullpool", "proxy"], choices=["pool", "nullpool", "proxy", "bouncer"]
    )
    parser.add_argument(
        "--bouncer-pools", type=int, nargs="+", default=[20], help="PgBouncer default_pool_size, one bouncer row each"
    )
    parser.add_argument("--trials", type=int, default=32, help="the study's budget in every run")
    parser.add_argument("--seconds", type=float, default=75, help="time limit of one run")
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--no-stale-check", action="store_true")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    # ask() on a heartbeat storage warns once per trial; the sweep's populations record heartbeats by hand too.
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
    engine = sqlalchemy.create_engine(args.postgres)
    with engine.connect() as connection:
        limit = connection.execute(sqlalchemy.text("show max_connections")).scalar()
        version = connection.execute(sqlalchemy.text("show server_version")).scalar()
    engine.dispose()
    print(f"Machine: {machine()}; Postgres {version} on 127.0.0.1, max_connections {limit}\n")
    print(f"budget {args.trials} trials x {EPOCHS} epochs per run, at most {args.seconds:.0f} s per run\n")
    print(
        "| mode | clients | finished | wall (s) | trials/s | tell p50 (ms) | tell p99 (ms) | connections held (max) | "
        "errors | budget exact, nothing lost | first error |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for clients in args.clients:
        for mode in args.modes:
            for pool_size in args.bouncer_pools if mode == "bouncer" else [None]:
                print(run_one(mode, args.postgres, clients, args.trials, args.seconds, pool_size), flush=True)
    if not args.no_stale_check:
        print(
            "\n| mode | a client killed mid-trial is failed as stale | its retry (through the same mode) |\n"
            "|---|---|---|"
        )
        for mode in args.modes:
            print(stale_check(mode, args.postgres, args.bouncer_pools[0]), flush=True)


if __name__ == "__main__":
    main()
