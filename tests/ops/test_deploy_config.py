"""The example deployment (deploy/: systemd units, env file, nginx, docker compose, Dockerfile; Procfile) agrees with
the code it configures: every variable it sets is one the code reads, the env file passes `check --deploy`, every
queue it names exists in the routing and every kind is served, exactly one beat, commands and modules exist, and
the ports, headers, body size and timeouts line up between gunicorn, nginx and the settings."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml

from broker.celery_routing import KINDS, queues_for

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
ENV_FILE = DEPLOY / "broker.env.example"
LIBRARY_VARS = {"DJANGO_SETTINGS_MODULE"}  # read by Django itself
READS = re.compile(r'(?:env_\w+|_float|_int|environ\.get|getenv)\(\s*"([A-Z][A-Z0-9_]+)"'
                   r'|environ\["([A-Z][A-Z0-9_]+)"\]')


@cache
def variables_the_code_reads() -> frozenset[str]:
    names = set(LIBRARY_VARS)
    for package in ("broker", "marketplace", "workers"):
        for path in (ROOT / package).rglob("*.py"):
            names.update(a or b for a, b in READS.findall(path.read_text()))
    return frozenset(names)


def env_file() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in ENV_FILE.read_text().splitlines() if line and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def unit(path: Path) -> dict[str, list[str]]:
    """Directive -> values (systemd allows repeats, e.g. Environment=)."""
    directives: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            directives.setdefault(key.strip(), []).append(value.strip())
    return directives


def unit_env(directives: dict[str, list[str]]) -> dict[str, str]:
    return dict(value.split("=", 1) for value in directives.get("Environment", []))


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def broker_services() -> dict[str, dict]:
    return {name: svc for name, svc in compose()["services"].items() if svc.get("image") == "compute-broker:latest"}


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def commands() -> dict[str, list[str]]:
    """Every broker command line of the deployment: systemd ExecStart and compose `command`, by origin."""
    found = {path.name: shlex.split(unit(path)["ExecStart"][0]) for path in UNITS}
    found.update({f"compose:{name}": svc["command"] for name, svc in broker_services().items()})
    return found


def program(argv: list[str]) -> str:
    return Path(argv[0]).name if argv[0] != "python" else Path(argv[1]).name


def base_queue() -> str:
    return env_file()["CELERY_QUEUE"]


@cache
def production_settings() -> dict:
    """`manage.py check --deploy` with nothing but the env file (as in production), and a few settings read in that
    same environment (one process: Django starts once)."""
    env = {"PATH": os.environ["PATH"], **env_file(), "BROKER_VAR_DIR": "/tmp/broker-deploy-check",
           "DJANGO_SETTINGS_MODULE": "broker.settings"}
    code = """
import json, django
django.setup()
from django.conf import settings as s
from django.core.management import call_command
from django.core.management.base import SystemCheckError
try:
    call_command("check", deploy=True, fail_level="WARNING")
    problem = ""
except SystemCheckError as exc:
    problem = str(exc)
print("SETTINGS " + json.dumps({"check_problem": problem, "proxy_ssl": s.SECURE_PROXY_SSL_HEADER,
      "max_body": s.DATA_UPLOAD_MAX_MEMORY_SIZE, "csv_max": s.CSV_MAX_BYTES, "queue": s.CELERY_TASK_DEFAULT_QUEUE,
      "time_limit": s.CELERY_TASK_TIME_LIMIT, "exempt": s.SECURE_REDIRECT_EXEMPT,
      "num_proxies": s.REST_FRAMEWORK.get("NUM_PROXIES")}))
"""
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr  # settings load with only the env file: no required setting missing
    line = next(line for line in run.stdout.splitlines() if line.startswith("SETTINGS "))
    return {"check_output": run.stdout, **json.loads(line.removeprefix("SETTINGS "))}


def test_every_variable_set_is_one_the_code_reads() -> None:
    reads = variables_the_code_reads()
    assert {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "CELERY_QUEUE", "ORDERS_RETRY_MAX"} <= reads  # the scan works
    sets = {f"{ENV_FILE.name}": set(env_file())}
    sets.update({path.name: set(unit_env(unit(path))) for path in UNITS})
    sets.update({f"compose:{name}": set(svc.get("environment", {})) for name, svc in broker_services().items()})
    unknown = {where: names - reads for where, names in sets.items() if names - reads}
    assert unknown == {}, "variables no code reads (a typo, or a setting that was removed)"


def test_the_env_file_provides_every_required_setting_and_passes_check_deploy() -> None:
    settings = production_settings()
    assert settings["check_problem"] == ""
    assert "System check identified no issues" in settings["check_output"]


def test_every_unit_reads_the_env_file_and_runs_a_command_that_exists() -> None:
    venv_bin = Path(sys.executable).parent
    for path in UNITS:
        directives = unit(path)
        assert directives["EnvironmentFile"] == ["/etc/broker/broker.env"], path.name
        assert directives["WorkingDirectory"] == ["/opt/broker"], path.name
        argv = shlex.split(directives["ExecStart"][0])
        assert argv[0].startswith("/opt/broker/.venv/bin/"), path.name
        assert (venv_bin / Path(argv[0]).name).exists(), f"{path.name}: no {Path(argv[0]).name} in the venv"
        multiproc = unit_env(directives).get("PROMETHEUS_MULTIPROC_DIR")
        if multiproc is not None:  # a directory systemd creates fresh for this unit
            assert multiproc == f"/run/{directives['RuntimeDirectory'][0]}", path.name


def test_commands_name_modules_and_apps_that_exist() -> None:
    for where, argv in commands().items():
        name = program(argv)
        if name == "gunicorn":
            module, attr = argv[1].split(":")
            assert callable(getattr(importlib.import_module(module), attr)), where
        elif name == "celery":
            assert option(argv, "-A") == "broker" and importlib.util.find_spec("broker.celery"), where
            assert argv[3] in ("worker", "beat"), where
        elif name == "manage.py":
            from django.core.management import get_commands

            assert argv[2] in get_commands(), where
        else:
            pytest.fail(f"{where}: unexpected program {argv[0]}")


def worker_queues(argv: list[str]) -> list[str]:
    return option(argv, "--queues").split(",")


@pytest.mark.parametrize("origin", ["systemd", "compose"])
def test_worker_queues_exist_in_the_routing_and_every_kind_is_served(origin: str) -> None:
    known = set(queues_for(KINDS, base_queue()))
    served: set[str] = set()
    workers = {where: argv for where, argv in commands().items()
               if program(argv) == "celery" and argv[3] == "worker" and where.startswith("compose:") == (
                   origin == "compose")}
    assert len(workers) == len(KINDS)  # one worker per kind
    for where, argv in workers.items():
        queues = worker_queues(argv)
        assert set(queues) <= known, f"{where}: {queues} not in {sorted(known)}"
        served.update(queues)
    assert served == known


def test_exactly_one_beat() -> None:
    beats = [where for where, argv in commands().items() if program(argv) == "celery" and argv[3] == "beat"]
    assert sorted(beats) == ["broker-beat.service", "compose:beat"]
    assert broker_services()["beat"]["deploy"]["replicas"] == 1


def test_workers_may_finish_a_task_before_they_are_killed() -> None:
    """Warm shutdown waits for the tasks in hand: the stop timeout must exceed the hard task time limit."""
    limit = production_settings()["time_limit"]
    for path in UNITS:
        if "worker" in path.name:
            assert int(unit(path)["TimeoutStopSec"][0]) > limit, path.name
    for name, svc in broker_services().items():
        if name.startswith("worker-"):
            assert int(svc["stop_grace_period"].removesuffix("s")) > limit, name


def test_metrics_ports_of_worker_units_are_distinct() -> None:
    ports = [unit_env(unit(path))["WORKER_METRICS_PORT"] for path in UNITS if "worker" in path.name]
    assert len(ports) == len(set(ports)) == len(KINDS)


def nginx(name: str) -> str:
    return (DEPLOY / "nginx" / name).read_text()


def test_proxy_and_gunicorn_agree() -> None:
    settings = production_settings()
    web = [argv for argv in commands().values() if program(argv) == "gunicorn"]
    assert len(web) == 2
    ports = {option(argv, "--bind").rsplit(":", 1)[1] for argv in web}
    assert ports == {"8000"}
    for conf in ("broker.conf", "compose.conf"):
        upstream = re.search(r"upstream broker_web \{(.*?)\}", nginx(conf), re.S).group(1)
        servers = re.findall(r"server\s+(\S+?):(\d+)", upstream)
        assert servers and {port for _, port in servers} == ports, conf
        assert "include /etc/nginx/broker-locations.conf;" in nginx(conf), conf
    mounts = compose()["services"]["nginx"]["volumes"]
    assert "./nginx/broker-locations.conf:/etc/nginx/broker-locations.conf:ro" in mounts
    for mount in mounts:
        assert (DEPLOY / mount.split(":")[0]).exists(), mount

    locations = nginx("broker-locations.conf")
    from marketplace.ops.middleware import RequestContextMiddleware

    assert f"proxy_set_header {RequestContextMiddleware.header} $request_id;" in locations
    header = settings["proxy_ssl"][0].removeprefix("HTTP_").replace("_", "-").title()
    assert f"proxy_set_header {header} $scheme;" in locations, header
    body = re.search(r"client_max_body_size (\d+)m;", locations)
    assert int(body.group(1)) * 1024 * 1024 >= max(settings["max_body"], settings["csv_max"])
    # One proxy appends the client address: the rate limits must count exactly that one hop.
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in locations
    assert settings["num_proxies"] == 1
    read_timeout = int(re.search(r"proxy_read_timeout (\d+)s;", locations).group(1))
    assert all(read_timeout > int(option(argv, "--timeout")) for argv in web)

    from django.urls import reverse

    probes = re.search(r"location ~ \^/\((.*?)\)\$", locations).group(1).split("|")
    assert {reverse(name) for name in probes} == {"/healthz", "/readyz", "/metrics"}
    assert {f"^{name}$" for name in probes} == set(settings["exempt"])  # probes over plain HTTP: no redirect


def test_compose_builds_from_files_that_exist() -> None:
    for name, svc in broker_services().items():
        build = svc["build"]
        assert (DEPLOY / build["context"] / build["dockerfile"]).exists(), name
        assert (DEPLOY / f"{svc['env_file']}.example").exists(), name  # broker.env is copied from the example
        assert svc["environment"]["PROMETHEUS_MULTIPROC_DIR"] in svc["tmpfs"], name
        assert svc["environment"]["REDIS_URL"].startswith("redis://redis:")
        assert svc["environment"]["DATABASE_URL"].startswith("postgres://broker:broker@postgres:5432/")
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), line


def test_procfile_workers_serve_every_kind() -> None:
    """`make run`: the Procfile's workers, with their shell's $Q the base queue, serve every kind queue."""
    lines = dict(line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines()
                 if line and not line.startswith("#"))
    served: set[str] = set()
    for name in ("worker", "billing"):
        queues = re.search(r'--queues "([^"]+)"', lines[name]).group(1)
        served.update(queues.replace("$Q", "base").split(","))
    assert served == set(queues_for(KINDS, "base"))
    assert re.search(r'--queues "\$Q\.billing', lines["billing"]) and "billing" not in lines["worker"]
