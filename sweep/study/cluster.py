"""Worker loops placed by Dask distributed over many machines: `sweep run --cluster ADDRESS`.

The driver (this process) checks the config, data and storage, creates the study, then submits one Dask
task per Dask worker; each task is an ordinary worker loop (runner.run_sweep) on the shared study, so
the budget, heartbeats and retries are exactly those of `--workers N`. Postgres (Optuna's RDB storage)
stays the single source of truth: Dask only places the loops and reschedules a loop whose worker died.

- GPUs: a task submitted to a worker that declares a `GPU` resource (`dask worker --resources GPU=1`,
  or dask-cuda, which also sets CUDA_VISIBLE_DEVICES per worker) asks for GPU=1 and trains on the first
  GPU that worker process sees; tasks on other workers train on the CPU. Each trial records the Dask
  worker, the GPU resource it held and CUDA_VISIBLE_DEVICES as given, next to `device`.
- Faults: a dead worker's task is rescheduled by Dask (at most `distributed.scheduler.allowed-failures`
  times, 3 by default); its running trial goes stale and is failed and retried by a surviving loop. Once
  the study holds its budget, tasks still queued (a rescheduled loop that would find nothing to do, or
  one that waits for a GPU worker that is gone) are cancelled.
- Ctrl-C / SIGTERM on the driver: signals cannot reach a task (it runs in a worker thread), so the
  driver sets a Dask Variable; a small thread in each task waits on it and sets this process's stop
  request (sweep.stopping), and the loop fails its running trial with "interrupted by SIGINT on the
  driver" at the next epoch, exactly as a signalled worker does.

Dask is imported only in this module's functions, and only when a cluster is used.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import optuna

from sweep import stopping
from sweep.config import SweepConfig
from sweep.data import load_dataset
from sweep.errors import ConfigError, StorageUnreachable, SweepError
from sweep.runtime import set_placement
from sweep.study import outage
from sweep.study.runner import prepare_study, run_sweep, sized_for
from sweep.study.summary import BUDGET_STATES, SweepResult, count_trials, summarize

INSTALL_HINT = "pip install -e '.[cluster]' (or pip install 'dask[distributed]')"
# Seconds to reach a scheduler, and to wait for its first worker.
CONNECT_TIMEOUT_SECONDS = 30
WORKERS_TIMEOUT_SECONDS = 60
# How often a task looks whether the driver asked it to stop (a scheduler round trip each time).
STOP_POLL_SECONDS = 1.0
# Rescheduling of a task whose worker died, for a local:N cluster (an external scheduler keeps its own setting).
ALLOWED_FAILURES = 3
# One worker loop per process: TensorFlow's devices, the stop request and the placement are process-wide.
_one_loop = threading.Lock()


class ClusterError(SweepError):
    """The Dask scheduler cannot be reached, has no workers, or Dask is not installed (exit code 2)."""


@dataclass(frozen=True)
class Placement:
    """One task: the Dask worker it is meant for and whether it asks that worker for a GPU."""

    worker: str
    gpu: bool


def plan(workers: dict[str, dict]) -> list[Placement]:
    """One task per Dask worker (its scheduler_info entry); a worker that declares GPU resources gets a task
    that asks for GPU=1."""
    return [
        Placement(address, info.get("resources", {}).get("GPU", 0) >= 1) for address, info in sorted(workers.items())
    ]


def _distributed():
    try:
        import distributed
    except ImportError:
        raise ClusterError(
            f"--cluster needs Dask distributed, which is not installed; install it: {INSTALL_HINT}"
        ) from None
    return distributed


@contextmanager
def connect(spec: str):
    """A Dask client for `spec` (config.cluster): a running scheduler, or a local cluster started here."""
    distributed = _distributed()
    import dask

    if spec.startswith("local:"):
        with dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES}):
            cluster = distributed.LocalCluster(
                n_workers=int(spec.removeprefix("local:")),
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                silence_logs=40,
            )
        with cluster, distributed.Client(cluster) as client:
            # The local workers share the terminal's process group: Ctrl-C must reach the driver only, which
            # stops them through the stop signal (a worker killed by SIGINT would leave its trial RUNNING).
            client.run(_ignore_sigint)
            yield client
        return
    try:
        client = distributed.Client(spec, timeout=CONNECT_TIMEOUT_SECONDS)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(
            f"cannot reach the Dask scheduler at {spec} ({type(exc).__name__}); start one (`dask scheduler`) and "
            "workers (`dask worker ADDRESS`), check --cluster, or try --cluster local:N"
        ) from None
    with client:
        try:
            client.wait_for_workers(1, timeout=WORKERS_TIMEOUT_SECONDS)
        except TimeoutError:
            raise ClusterError(
                f"the Dask scheduler at {spec} has no workers after {WORKERS_TIMEOUT_SECONDS} s; start some with "
                f"`dask worker {spec} --nthreads 1`"
            ) from None
        yield client


def _ignore_sigint() -> None:
    """Run on each local worker's event loop, which is its process's main thread."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_cluster(
    config: SweepConfig,
    on_start: Callable[[optuna.Study], None] | None = None,
    on_progress: Callable[[optuna.Study], None] | None = None,
    poll_seconds: float = 1.0,
) -> SweepResult:
    """Run the sweep of `config` as one worker loop per Dask worker of `config.cluster`, and wait for it.

    Same contract as runner.run_workers: checks first, the study ends with exactly `config.trials` finished
    trials, and SIGINT/SIGTERM (stopping.check) stop every loop, each failing its running trial.
    """
    if config.workers > 1:
        raise ConfigError(
            f"workers = {config.workers} and cluster = {config.cluster!r}: with a cluster there is one worker loop per "
            "Dask worker; drop --workers (or start more Dask workers)"
        )
    _distributed()  # a missing extra is bad input too: say so before any work
    outage.configure(config.outage_limit)
    dataset = load_dataset(config)
    with connect(config.cluster) as client:  # before the study is created: an unreachable scheduler leaves no trace
        config, depth = sized_for(config, dataset)  # resolved once here, so every loop trains the same network
        study = prepare_study(config, dataset, depth=depth)
        before = count_trials(study, tuple(optuna.trial.TrialState))
        placements = plan(client.scheduler_info(n_workers=-1)["workers"])
        # The automatic population size divides the budget by the loops that share it.
        task_config = dataclasses.replace(config, workers=len(placements))
        stop = StopSignal(f"sweep-stop-{uuid.uuid4().hex}", client)
        futures = [
            client.submit(
                worker_loop,
                task_config,
                placement.gpu,
                stop.name,
                key=f"sweep-{config.study}-{index}-{uuid.uuid4().hex[:8]}",
                workers=[placement.worker],
                allow_other_workers=True,
                resources={"GPU": 1} if placement.gpu else None,
                pure=False,
            )
            for index, placement in enumerate(placements)
        ]
        if on_start is not None:
            on_start(study)
        try:
            _wait(client, study, config, futures, on_progress, poll_seconds)
        except KeyboardInterrupt:
            stop.send(stopping.requested() or "SIGINT")
            _wait_until_done(futures, timeout=60)  # each fails its running trial at its next epoch
            raise
        finally:
            stop.close()
        problems = _problems(futures)
        client.cancel([future for future in futures if not future.done()])
    stop_reason = "; ".join(problems) if problems else None
    return summarize(
        study,
        config.storage,
        ran_now=count_trials(study, tuple(optuna.trial.TrialState)) - before,
        stop_reason=stop_reason,
    )


def _budget_filled(study: optuna.Study, config: SweepConfig) -> bool:
    open_states = (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING)
    return count_trials(study, BUDGET_STATES) >= config.trials and count_trials(study, open_states) == 0


def _wait(client, study, config: SweepConfig, futures: list, on_progress, poll_seconds: float) -> None:
    """Until every task is done, or the budget is filled and no task is still running on a worker: a task
    that is not (one Dask rescheduled after its worker died, or one waiting for a GPU worker that is gone)
    would find nothing to do. A running one gets two loop rounds (heartbeat_interval) and a margin to end."""
    filled_since = None
    while not all(future.done() for future in futures):
        time.sleep(poll_seconds)
        stopping.check()
        try:
            if on_progress is not None:
                on_progress(study)  # waits out an outage, with the worker loops
            filled = _budget_filled(study, config)
        except StorageUnreachable:
            filled = False  # past the limit: the loops give up as well, and the driver says so after them
        if not filled:
            filled_since = None
            continue
        filled_since = filled_since or time.monotonic()
        processing = {key for keys in client.processing().values() for key in keys}
        if not any(future.key in processing for future in futures if not future.done()):
            return
        if time.monotonic() - filled_since > 2 * config.heartbeat_interval + 5:
            return


def _wait_until_done(futures: list, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not all(future.done() for future in futures):
        time.sleep(0.2)


def _problems(futures: list) -> list[str]:
    """What went wrong in the finished tasks, one phrase each (a task that raised, or stopped its loop)."""
    problems = []
    for future in futures:
        if not future.done() or future.status == "cancelled":
            continue
        if future.status == "error":
            exc = future.exception()
            if isinstance(exc, StorageUnreachable):
                raise exc  # one line, exit 2, as a local run gives
            problems.append(
                f"a worker loop failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            )
            continue
        outcome = future.result()
        if outcome.get("stop_reason"):
            problems.append(f"worker loop on {outcome['dask_worker']}: {outcome['stop_reason']}")
    return problems


def worker_loop(config: SweepConfig, gpu: bool, stop_name: str) -> dict:
    """The body of one Dask task: run_sweep on this Dask worker, on its GPU when the task holds one.

    Returns what the loop did (the driver reports a stop reason); an interrupted loop returns normally
    after failing its running trial, so Dask does not retry it.
    """
    from distributed import get_client, get_worker

    address = get_worker().address
    with _one_loop:
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # as in run_workers' processes: the driver shows progress
        stopping.clear()
        done = threading.Event()
        watcher = threading.Thread(
            target=StopSignal(stop_name, get_client()).watch,
            args=(done,),
            name="sweep-stop-watcher",
            daemon=True,
        )
        watcher.start()
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        set_placement(dask_worker=address, dask_gpu=1 if gpu else 0, cuda_visible_devices=visible)
        # With a GPU resource, "auto" is the first GPU this process sees (dask-cuda orders CUDA_VISIBLE_DEVICES so);
        # without one, the CPU, even on a machine with GPUs (they belong to other workers).
        device = config.device if gpu or config.device_spec.kind != "auto" else "cpu"
        outcome = {"dask_worker": address, "gpu": gpu, "cuda_visible_devices": visible}
        try:
            result = run_sweep(dataclasses.replace(config, device=device))
            return outcome | {"ran": result.ran_now, "stop_reason": result.stop_reason}
        except KeyboardInterrupt:
            return outcome | {"interrupted": stopping.reason()}
        finally:
            done.set()
            watcher.join()
            set_placement()
            stopping.clear()


class StopSignal:
    """The driver's stop, seen by every task: a Dask Event (set once) and a Variable with the signal's name."""

    def __init__(self, name: str, client) -> None:
        distributed = _distributed()
        self.name = name
        self._event = distributed.Event(name, client=client)
        self._signal = distributed.Variable(name, client=client)

    def send(self, signal_name: str) -> None:
        self._signal.set(signal_name)
        self._event.set()

    def close(self) -> None:
        self._signal.delete()
        self._event.clear()  # the scheduler forgets an event that is cleared and has no waiters

    def watch(self, done: threading.Event) -> None:
        """In a task: until `done`, turn the driver's stop into this process's stop request (sweep.stopping)."""
        while not done.is_set():
            try:
                if self._event.wait(timeout=STOP_POLL_SECONDS):
                    stopping.request(f"{self._signal.get(timeout=STOP_POLL_SECONDS)} on the driver")
                    return
            except Exception:  # the scheduler went away: the loop goes on and ends with the budget
                if done.wait(STOP_POLL_SECONDS):
                    return
