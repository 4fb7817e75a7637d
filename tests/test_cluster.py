"""Tests for sweep.study.cluster: worker loops placed by a real Dask scheduler and worker processes on 127.0.0.1.

The cluster tests skip with a reason when Dask is not installed, and fail instead when SWEEP_REQUIRE_CLUSTER=1
(CI installs the cluster extra). Everything binds to 127.0.0.1; a test stops only the processes it started.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from sweep.cli import app
from sweep.config import resolve_config
from sweep.errors import ConfigError
from sweep.study.summary import BUDGET_STATES
from tests.test_runner import _wait_for

BIN = Path(sys.executable).parent
SWEEP = str(BIN / "sweep")
DASK = str(BIN / "dask")
STOP_REASON = "interrupted by SIGINT on the driver"


def require_dask() -> None:
    """Skip with a reason without Dask distributed; fail instead when SWEEP_REQUIRE_CLUSTER=1 (CI)."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        reason = "Dask distributed is not installed (pip install -e '.[cluster]')"
        if os.environ.get("SWEEP_REQUIRE_CLUSTER") == "1":
            pytest.fail(f"SWEEP_REQUIRE_CLUSTER=1 but {reason}")
        pytest.skip(reason)


@pytest.mark.parametrize(
    "value, expected",
    [
        ("local:2", "local:2"),
        ("tcp://127.0.0.1:8786", "tcp://127.0.0.1:8786"),
        ("tls://scheduler.internal:8786", "tls://scheduler.internal:8786"),
        ("none", None),
        ("local:0", ConfigError),
        ("local:65", ConfigError),
        ("127.0.0.1:8786", ConfigError),
        ("tcp://127.0.0.1", ConfigError),
        ("http://127.0.0.1:8786", ConfigError),
    ],
)
def test_cluster_spec(value, expected):
    """Check that --cluster accepts tcp://HOST:PORT, tls://HOST:PORT and local:N, and names the syntax otherwise."""
    if expected is ConfigError:
        with pytest.raises(ConfigError, match=r"cluster = .* expected tcp://HOST:PORT .* or local:N"):
            resolve_config({"cluster": value}, env={})
    else:
        assert resolve_config({"cluster": value}, env={}).cluster == expected


def test_nothing_of_dask_is_imported_without_cluster(tmp_path):
    """Check that every sweep module (sweep.study.cluster included) and a `sweep run` without --cluster import no Dask
    module."""
    import pkgutil

    import sweep

    modules = [info.name for info in pkgutil.walk_packages(sweep.__path__, "sweep.")]
    script = (
        f"import importlib, sys; [importlib.import_module(m) for m in {modules!r}]; "
        "from typer.testing import CliRunner; from sweep.cli import app; "
        f"result = CliRunner().invoke(app, ['run', '--data', {str(tmp_path / 'missing.csv')!r}, '--storage', "
        f"'sqlite:///{tmp_path / 'plain.db'}']); "
        "assert result.exit_code == 2, result.output; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "sweep.study.cluster" in modules and done.stdout.strip().splitlines()[-1] == "[]"


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(
    "case, flags, match",
    [
        (
            "dask missing",
            ["--cluster", "local:1"],
            r"--cluster needs Dask distributed, which is not installed; install it: pip install -e '\.\[cluster\]'",
        ),
        (
            "no scheduler",
            ["--cluster", "tcp://127.0.0.1:{port}"],
            r"cannot reach the Dask scheduler at tcp://127\.0\.0\.1:\d+ .*; start one",
        ),
        (
            "workers too",
            ["--cluster", "local:1", "--workers", "2"],
            r"workers = 2 and cluster = 'local:1'.*drop --workers",
        ),
    ],
)
def test_bad_cluster_input_is_one_line_and_exit_2(tiny_csv, tmp_path, monkeypatch, case, flags, match):
    """Check that a missing Dask, an unreachable scheduler or --workers with --cluster is one line on stderr and exit 2,
    with no study created."""
    from sweep.study import cluster

    if case == "dask missing":
        monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` now raises ImportError
    if case == "no scheduler":
        require_dask()
        monkeypatch.setattr(cluster, "CONNECT_TIMEOUT_SECONDS", 2)
    storage = f"sqlite:///{tmp_path / 'bad.db'}"
    flags = [flag.format(port=_free_port()) for flag in flags]
    result = CliRunner().invoke(
        app, ["run", "--data", tiny_csv, "--target", "label", "--storage", storage, "--trials", "1", *flags]
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert lines[0].startswith("error: ") and re.search(match, lines[0]), lines[0]
    assert optuna.get_all_study_names(storage) == []


class DaskProcesses:
    """A Dask scheduler and two worker processes (`gpu` declares GPU=1), each started as its own command."""

    WORKERS = {"gpu": (["--resources", "GPU=1"], {"CUDA_VISIBLE_DEVICES": "0"}), "cpu": ([], {})}

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.processes: dict[str, subprocess.Popen] = {}
        self.addresses: dict[str, str] = {}
        scheduler_file = folder / "scheduler.json"
        self._start(
            "scheduler",
            [
                DASK,
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(scheduler_file),
            ],
        )
        _wait_for(scheduler_file.exists, timeout=60)
        self.address = _wait_for(lambda: json.loads(scheduler_file.read_text() or "{}").get("address"), timeout=10)
        self.ensure_workers()

    def ensure_workers(self) -> None:
        """Start each worker that is not running (first use, or killed by an earlier test) and wait for both."""
        from distributed import Client

        for name, (flags, env) in self.WORKERS.items():
            if name not in self.processes or self.processes[name].poll() is not None:
                self._start(
                    name,
                    [
                        DASK,
                        "worker",
                        self.address,
                        "--host",
                        "127.0.0.1",
                        "--nthreads",
                        "1",
                        "--no-dashboard",
                        "--no-nanny",
                        "--local-directory",
                        str(self.folder),
                        "--name",
                        name,
                        *flags,
                    ],
                    **env,
                )
        with Client(self.address, timeout=30) as client:
            client.wait_for_workers(len(self.WORKERS), timeout=60)
            self.addresses = {
                info["name"]: address for address, info in client.scheduler_info(n_workers=-1)["workers"].items()
            }

    def _start(self, name: str, command: list[str], **env: str) -> None:
        environment = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"} | env
        with open(self.folder / f"{name}.log", "a") as log:
            self.processes[name] = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=environment, start_new_session=True
            )

    def kill(self, name: str) -> None:
        self.processes[name].send_signal(signal.SIGKILL)
        self.processes[name].wait(timeout=30)

    def stop(self) -> None:
        """Stop the processes this object started (each is its own process group), the scheduler last."""
        for name in (*self.WORKERS, "scheduler"):
            process = self.processes.get(name)
            if process is None or process.poll() is not None:
                continue
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=20)


@pytest.fixture(scope="module")
def _dask_module(tmp_path_factory):
    require_dask()
    started = None
    try:
        started = DaskProcesses(tmp_path_factory.mktemp("dask"))
        yield started
    finally:
        if started is not None:
            started.stop()


@pytest.fixture
def dask_processes(_dask_module):
    """One scheduler and its two workers for the module (TensorFlow loads once per worker); a worker killed
    by an earlier test is started again."""
    _dask_module.ensure_workers()
    return _dask_module


def _driver(tiny_csv: str, storage: str, study: str, address: str, trials: int, epochs: int) -> subprocess.Popen:
    command = [
        SWEEP,
        "run",
        "--cluster",
        address,
        "--data",
        tiny_csv,
        "--target",
        "label",
        "--storage",
        storage,
        "--study",
        study,
        "--trials",
        str(trials),
        "--epochs",
        str(epochs),
        "--population",
        "1",
        "--pruner",
        "none",
        "--batch-size",
        "32",
        "--hidden-layers",
        "1",  # no depth probe in the driver: the subject is the cluster
        "--heartbeat-interval",
        "1",
        "--grace-period",
        "3",
        "--cv",
        "0",
    ]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _trials(storage: str, study: str) -> list:
    try:
        return optuna.load_study(study_name=study, storage=storage).trials
    except KeyError:
        return []


def _running_on_each_worker(storage: str, study: str, addresses: dict[str, str]):
    """{worker name: its running trial} once each worker runs one, else None."""
    trials = _trials(storage, study)
    running = {
        name: [t for t in trials if t.state == TrialState.RUNNING and t.user_attrs.get("dask_worker") == address]
        for name, address in addresses.items()
    }
    if all(running.values()):
        return {name: found[0] for name, found in running.items()}
    return None


def _cleanup(storage: str, study: str) -> None:
    if study in optuna.get_all_study_names(storage):
        optuna.delete_study(study_name=study, storage=storage)


@pytest.mark.slow  # a Dask cluster started, interrupted and started again
def test_ctrl_c_on_the_driver_stops_every_worker_and_a_rerun_resumes(
    dask_processes, tiny_csv, postgres_url, unique_name
):
    """Check that SIGINT to the driver fails each worker's running trial with the reason (exit 130), and that a rerun on
    the same workers completes the study."""
    # 2,000 epochs of the tiny table take a few seconds: the trials are still running when SIGINT arrives.
    driver = _driver(tiny_csv, postgres_url, unique_name, dask_processes.address, trials=4, epochs=2000)
    rerun = None
    try:
        running = _wait_for(lambda: _running_on_each_worker(postgres_url, unique_name, dask_processes.addresses))
        driver.send_signal(signal.SIGINT)
        _, stderr = driver.communicate(timeout=90)
        assert driver.returncode == 130, stderr
        trials = {t.number: t for t in _trials(postgres_url, unique_name)}
        assert not [t for t in trials.values() if t.state == TrialState.RUNNING]
        for trial in running.values():
            assert (trials[trial.number].state, trials[trial.number].user_attrs.get("fail_reason")) == (
                TrialState.FAIL,
                STOP_REASON,
            )
        rerun = _driver(tiny_csv, postgres_url, unique_name, dask_processes.address, trials=4, epochs=2)
        _, stderr = rerun.communicate(timeout=180)
        assert rerun.returncode == 0, stderr
        assert (
            len(optuna.load_study(study_name=unique_name, storage=postgres_url).get_trials(states=BUDGET_STATES)) == 4
        )
    finally:
        for process in (driver, rerun):
            if process is not None and process.poll() is None:
                process.kill()
        _cleanup(postgres_url, unique_name)


def test_killed_dask_worker_still_fills_the_budget(dask_processes, tiny_csv, postgres_url, unique_name):
    """Check that a sweep on a real Dask cluster records each trial's Dask worker and GPU, and that killing the GPU
    worker mid-trial still ends with exactly N finished, none RUNNING, the killed trial FAIL with its reason."""
    trials = 4
    # 400 epochs of the tiny table take about a second: long enough to be killed mid-trial.
    driver = _driver(tiny_csv, postgres_url, unique_name, dask_processes.address, trials=trials, epochs=400)
    try:
        # Only the GPU worker must be mid-trial: on a loaded machine one worker can finish its 1-second trials before
        # the other has imported TensorFlow, so both are seldom seen running at once.
        gpu_only = {"gpu": dask_processes.addresses["gpu"]}
        _wait_for(lambda: _running_on_each_worker(postgres_url, unique_name, gpu_only))
        dask_processes.kill("gpu")  # its task needs a GPU no other worker has: Dask cannot place it again
        gone = dask_processes.addresses["gpu"]
        # .get: a trial asked a moment ago has not recorded its set-up yet
        orphaned = [
            t
            for t in _trials(postgres_url, unique_name)
            if t.state == TrialState.RUNNING and t.user_attrs.get("dask_worker") == gone
        ]
        assert len(orphaned) == 1, "the GPU worker was not mid-trial when killed"
        stdout, stderr = driver.communicate(timeout=240)
        assert driver.returncode == 0, stderr
        assert f"{trials} finished trials" in stdout
        study = optuna.load_study(study_name=unique_name, storage=postgres_url)
        assert len(study.get_trials(states=BUDGET_STATES)) == trials
        assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
        killed = study.trials[orphaned[0].number]
        assert killed.state == TrialState.FAIL and killed.user_attrs["fail_reason"].startswith(
            "worker lost: no heartbeat for more than 3 s"
        )
        assert any(t.system_attrs.get("failed_trial") == killed.number for t in study.trials), "not retried"
        placed = {address: name for name, address in dask_processes.addresses.items()}
        for trial in study.get_trials(states=BUDGET_STATES):
            on = placed[trial.user_attrs["dask_worker"]]
            expected = (
                {"dask_gpu": 1, "cuda_visible_devices": "0"}
                if on == "gpu"
                else {"dask_gpu": 0, "cuda_visible_devices": None, "device": "cpu"}
            )
            assert {key: trial.user_attrs[key] for key in expected} == expected, (on, trial.user_attrs)
            assert trial.user_attrs["device"] in ("cpu", "gpu:0")
    finally:
        if driver.poll() is None:
            driver.kill()
        _cleanup(postgres_url, unique_name)
