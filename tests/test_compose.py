"""Tests for the container files: docker-compose.yml, Dockerfile, .dockerignore and .env.example, without a Docker
engine."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"
SERVICES = ["postgres", "pgbouncer", "dashboard", "worker", "worker-gpu"]
CLIENTS = ["dashboard", "worker", "worker-gpu"]
WORKERS = ["worker", "worker-gpu"]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def environment(service: dict) -> dict:
    """A service's environment as a dict, whether written as a mapping or as a KEY=VALUE list."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return env


def host_ip(port) -> str | None:
    """The host address a published port binds to, from the short or long syntax (None when unbound)."""
    if isinstance(port, dict):
        return port.get("host_ip")
    parts = re.sub(r"\$\{[^}]*\}", "VAR", str(port)).split(":")
    return parts[0] if len(parts) == 3 else None


def dockerfile_instructions() -> list[tuple[str, str]]:
    """The Dockerfile as (INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [tuple(line.split(None, 1)) for line in lines if line and not line.startswith("#")]


@pytest.mark.parametrize("name", SERVICES)
def test_service_exists(services, name):
    """Check that the compose file defines each expected service."""
    assert name in services


def test_postgres_healthcheck_uses_pg_isready(services):
    """Check that postgres has a pg_isready healthcheck with user and database, so dependants can wait for it."""
    check = services["postgres"]["healthcheck"]
    test = check["test"] if isinstance(check["test"], str) else " ".join(check["test"])
    assert "pg_isready" in test and "-U" in test and "-d" in test
    assert {"interval", "timeout", "retries"} <= check.keys()


def test_postgres_data_is_on_the_named_volume(compose, services):
    """Check that postgres keeps its data on the pgdata volume declared at top level, so it survives `down`."""
    assert "pgdata:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    assert "pgdata" in compose["volumes"]


@pytest.mark.parametrize("name", SERVICES)
def test_published_ports_bind_to_localhost_only(services, name):
    """Check that every port a service publishes is bound to 127.0.0.1, not to every interface."""
    service = services[name]
    assert service.get("network_mode") != "host"
    for port in service.get("ports", []):
        assert host_ip(port) == "127.0.0.1", port


def test_dashboard_is_published_on_localhost(services):
    """Check that the dashboard serves on 0.0.0.0 inside the container with --allow-remote (so behind basic auth) and
    is published on 127.0.0.1 only."""
    dashboard = services["dashboard"]
    assert dashboard["command"][0] == "dashboard"
    assert "0.0.0.0" in dashboard["command"] and "--allow-remote" in dashboard["command"]
    assert "--read-only" not in dashboard["command"]  # then it would need no credentials
    assert [host_ip(port) for port in dashboard["ports"]] == ["127.0.0.1"]


def test_dashboard_credentials_are_required_interpolation(services):
    """Check that the dashboard's basic-auth credentials come from a required ${SWEEP_DASHBOARD_CREDENTIALS:?...}
    variable (never a literal or a command-line value), and .env.example defines a placeholder absent from the compose
    file."""
    dashboard = services["dashboard"]
    assert environment(dashboard)["SWEEP_DASHBOARD_CREDENTIALS"].startswith("${SWEEP_DASHBOARD_CREDENTIALS:?")
    assert not any("credentials" in str(arg).lower() for arg in dashboard["command"])
    example = dict(re.findall(r"^(\w+)=(.*)$", ENV_EXAMPLE.read_text(), re.M))["SWEEP_DASHBOARD_CREDENTIALS"]
    assert re.fullmatch(r"[^:$\s]+:[^$\s]+", example) and example not in COMPOSE.read_text()


@pytest.mark.parametrize("name", CLIENTS)
def test_clients_wait_for_healthy_postgres(services, name):
    """Check that the dashboard and workers start only once postgres reports healthy."""
    assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"


@pytest.mark.parametrize("name", CLIENTS)
def test_clients_get_postgres_storage_url(services, name):
    """Check that the dashboard and workers get a psycopg SWEEP_STORAGE: the dashboard on the postgres service
    directly, the workers through the pgbouncer service."""
    assert environment(services[name])["SWEEP_STORAGE"].startswith("postgresql+psycopg://")
    host = "@pgbouncer:5432/" if name in WORKERS else "@postgres:5432/"
    assert host in environment(services[name])["SWEEP_STORAGE"]


def storage_url(service: dict):
    """A service's SWEEP_STORAGE parsed by SQLAlchemy, with each ${VAR...} interpolation replaced by VAR."""
    from sqlalchemy.engine import make_url

    return make_url(re.sub(r"\$\{(\w+)[^}]*\}", r"\1", environment(service)["SWEEP_STORAGE"]))


def test_pgbouncer_pools_transactions_in_front_of_postgres(services):
    """Check that pgbouncer (the edoburu/pgbouncer image, configured by its variables) pools in transaction mode
    in front of the postgres service's database and user, with scram auth (postgres:16's), room for many worker
    connections and a server pool well under Postgres' default max_connections of 100."""
    bouncer = services["pgbouncer"]
    env = environment(bouncer)
    assert bouncer["image"].startswith("edoburu/pgbouncer")
    assert env["POOL_MODE"] == "transaction"
    assert (env["DB_HOST"], str(env["DB_PORT"])) == ("postgres", "5432")
    postgres = environment(services["postgres"])
    assert env["DB_NAME"] == postgres["POSTGRES_DB"] and env["DB_USER"] == postgres["POSTGRES_USER"]
    assert env["DB_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    assert env["AUTH_TYPE"] == "scram-sha-256"
    assert int(env["MAX_CLIENT_CONN"]) >= 500 and 0 < int(env["DEFAULT_POOL_SIZE"]) <= 50


def test_pgbouncer_waits_for_postgres_and_reports_health(services):
    """Check that pgbouncer starts once postgres is healthy, has a pg_isready health check on its own port, and
    publishes no port (only the workers use it)."""
    bouncer = services["pgbouncer"]
    assert bouncer["depends_on"]["postgres"]["condition"] == "service_healthy"
    test = " ".join(bouncer["healthcheck"]["test"])
    assert "pg_isready" in test and f"-p {environment(bouncer)['LISTEN_PORT']}" in test
    assert "ports" not in bouncer
    assert bouncer["restart"] == "unless-stopped"


@pytest.mark.parametrize("name", WORKERS)
def test_workers_go_through_pgbouncer(services, name):
    """Check that the workers' SWEEP_STORAGE is the pgbouncer service on its listen port, same database and user
    as postgres, with the ?pgbouncer=1 option that makes sweep's storage PgBouncer-safe, and that the workers
    start only once pgbouncer is healthy; the dashboard stays on Postgres directly, without the option."""
    url = storage_url(services[name])
    assert (url.host, url.port) == ("pgbouncer", int(environment(services["pgbouncer"])["LISTEN_PORT"]))
    assert url.query == {"pgbouncer": "1"}
    assert (url.username, url.database) == (
        storage_url(services["dashboard"]).username,
        storage_url(services["dashboard"]).database,
    )
    assert services[name]["depends_on"]["pgbouncer"]["condition"] == "service_healthy"
    dashboard = storage_url(services["dashboard"])
    assert dashboard.host == "postgres" and "pgbouncer" not in dashboard.query


@pytest.mark.parametrize("name, device", [("worker", "cpu"), ("worker-gpu", "gpu")])
def test_worker_runs_worker_command(services, name, device):
    """Check that both worker services run `sweep worker` on a study config with the matching SWEEP_DEVICE."""
    worker = services[name]
    assert worker["command"][0] == "worker"
    assert "--config" in worker["command"] and "--study" in worker["command"]
    assert environment(worker)["SWEEP_DEVICE"] == device


@pytest.mark.parametrize("name", WORKERS)
def test_workers_stop_gracefully(services, name):
    """Check that workers get SIGTERM, a grace period and an init process, so a running trial can be closed out."""
    worker = services[name]
    assert worker["stop_signal"] == "SIGTERM"
    assert worker["stop_grace_period"]
    assert worker["init"] is True
    assert worker["restart"] == "on-failure"
    assert "container_name" not in worker


def test_worker_scales(services):
    """Check that the CPU worker runs several replicas by default and has no profile, so plain `up` starts it."""
    worker = services["worker"]
    assert worker["deploy"]["replicas"] >= 2
    assert "profiles" not in worker


def test_gpu_worker_reserves_nvidia_devices_in_gpu_profile(services):
    """Check that worker-gpu is only in the gpu profile, builds the gpu extra and reserves NVIDIA GPUs."""
    worker = services["worker-gpu"]
    assert worker["profiles"] == ["gpu"]
    assert worker["build"]["args"]["EXTRAS"] == "[gpu]"
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)


def test_postgres_password_is_required_interpolation(services):
    """Check that the postgres password comes from a required ${POSTGRES_PASSWORD:?...} variable, never a default."""
    assert environment(services["postgres"])["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")


def test_no_password_literal_in_compose(services):
    """Check that no password literal is in docker-compose.yml: every password is ${POSTGRES_PASSWORD...}
    interpolation."""
    text = COMPOSE.read_text()
    passwords = re.findall(r"://(?:\$\{[^}]*\}|[^:/@\s]+):(\$\{[^}]*\}|[^@\s]+)@", text)
    assert passwords
    for password in passwords:
        assert password.startswith("${POSTGRES_PASSWORD"), password
    for name, service in services.items():
        for key, value in environment(service).items():
            if "PASSWORD" in key:
                assert str(value).startswith("${POSTGRES_PASSWORD"), (name, key)
    example = dict(re.findall(r"^(\w+)=(.*)$", ENV_EXAMPLE.read_text(), re.M))["POSTGRES_PASSWORD"]
    assert example not in text


def test_env_file_is_ignored_and_example_exists():
    """Check that .env is git-ignored while .env.example exists and defines POSTGRES_PASSWORD."""
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()
    assert re.search(r"^POSTGRES_PASSWORD=\S+", ENV_EXAMPLE.read_text(), re.M)


@pytest.mark.parametrize("pattern", [".venv", ".git", "studies/*.db", "exports", ".env", ".pytest_cache", "*.egg-info"])
def test_dockerignore_excludes(pattern):
    """Check that .dockerignore keeps local environments, databases, exports and secrets out of the build context."""
    assert pattern in (ROOT / ".dockerignore").read_text().splitlines()


def test_dockerfile_base_and_install():
    """Check that the Dockerfile uses Python 3.11 and pip-installs the project from `.`, with the extras build arg."""
    instructions = dockerfile_instructions()
    assert instructions[0][0] == "FROM" and instructions[0][1].startswith("python:3.11")
    assert ("ARG", 'EXTRAS=""') in instructions
    runs = [args for op, args in instructions if op == "RUN"]
    assert any(re.search(r"pip install .*[\"']?\.\$\{EXTRAS\}[\"']?", run) for run in runs)


def test_dockerfile_copies_no_databases():
    """Check that the Dockerfile copies only study configs from studies/, never SQLite databases."""
    copies = [args for op, args in dockerfile_instructions() if op == "COPY"]
    assert not any(".db" in args or args.split()[0] in {".", "studies", "studies/"} for args in copies)


def test_dockerfile_entrypoint_and_user():
    """Check that the Dockerfile runs `sweep` as its entrypoint as a non-root user."""
    instructions = dockerfile_instructions()
    ops = [op for op, _ in instructions]
    assert ("ENTRYPOINT", '["sweep"]') in instructions
    users = [args for op, args in instructions if op == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert max(i for i, op in enumerate(ops) if op == "USER") < ops.index("ENTRYPOINT")


def compose_command() -> list[str] | None:
    """`docker compose` (the plugin) or `docker-compose` (the standalone binary), whichever works here."""
    for command in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(command[0]) is None:
            continue
        try:
            if subprocess.run([*command, "version"], capture_output=True, timeout=30).returncode == 0:
                return command
        except (OSError, subprocess.TimeoutExpired):
            continue
    return None


@pytest.mark.parametrize("missing", [None, "POSTGRES_PASSWORD", "SWEEP_DASHBOARD_CREDENTIALS"])
def test_docker_compose_config(tmp_path, monkeypatch, missing):
    """Check that `docker compose config` accepts the file with .env.example and refuses it, naming the variable,
    without the postgres password or without the dashboard credentials."""
    command = compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    monkeypatch.delenv("POSTGRES_PASSWORD", raising=False)
    monkeypatch.delenv("SWEEP_DASHBOARD_CREDENTIALS", raising=False)
    env_file = tmp_path / "test.env"
    lines = ENV_EXAMPLE.read_text().splitlines()
    env_file.write_text(
        "\n".join(line for line in lines if missing is None or not line.startswith(f"{missing}=")) + "\n"
    )
    result = subprocess.run(
        [*command, "--env-file", str(env_file), "--profile", "gpu", "config", "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode == 0) == (missing is None), result.stderr
    if missing is not None:
        assert missing in result.stderr
