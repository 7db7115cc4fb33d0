"""Command line of the reference agent, shared by `python -m workers.agent` and `manage.py provider_agent`.

The secret comes from --secret-file, $AGENT_SECRET or --secret (in that order of preference: a flag is visible
to other users in the process list). The previous secret (during a rotation) from --previous-secret or
$AGENT_PREVIOUS_SECRET, accepted for --previous-secret-grace seconds after start.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from workers.agent.machine import machine_facts
from workers.agent.registration import Registrar, Registration
from workers.agent.server import AgentApp, AgentConfig, AgentServer

log = logging.getLogger("provider_agent")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8701, help="port to listen on (default 8701; 0: any free port, "
                                                               "printed once bound)")
    parser.add_argument("--provider", required=True, help="the provider's slug at the broker")
    parser.add_argument("--name", default="default", help="this agent's name within the provider")
    parser.add_argument("--secret", default="", help="shared secret (prefer --secret-file or $AGENT_SECRET)")
    parser.add_argument("--secret-file", default="", help="file holding the shared secret")
    parser.add_argument("--previous-secret", default="", help="the secret before a rotation")
    parser.add_argument("--previous-secret-grace", type=float, default=3600.0,
                        help="seconds after start during which the previous secret is still accepted")
    parser.add_argument("--work-dir", default="var/agent", help="jobs, logs and the agent's state")
    parser.add_argument("--slots", type=int, default=1, help="jobs run at the same time (they share the machine)")
    parser.add_argument("--max-time-limit", type=int, default=7 * 24 * 3600, help="longest time limit accepted (s)")
    parser.add_argument("--kill-grace", type=float, default=5.0, help="SIGTERM to SIGKILL delay (s)")
    parser.add_argument("--broker", default="", help="broker base URL to register with; empty: do not register")
    parser.add_argument("--advertise-url", default="", help="URL the broker reaches this agent at "
                                                           "(default http://<host>:<port>)")
    parser.add_argument("--heartbeat", type=float, default=30.0, help="seconds between registrations")
    parser.add_argument("--kill-jobs-on-exit", action="store_true",
                        help="terminate running jobs when the agent stops (default: they keep running and the next "
                             "start adopts them)")
    offer = parser.add_argument_group("the offer this agent lists")
    offer.add_argument("--accelerator", default="", help="accelerator name as the broker knows it; empty: register "
                                                         "the machine without listing an offer")
    offer.add_argument("--accelerator-count", type=int, default=1)
    offer.add_argument("--memory-gb", type=float, default=None, help="accelerator memory (default: the catalog's)")
    offer.add_argument("--region", default="", help="region key at the broker, e.g. eu-sweden")
    offer.add_argument("--price-per-hour", default="0.10", help="USD per node-hour")
    offer.add_argument("--offer-name", default="", help="default: '<hostname> via reference agent'")
    offer.add_argument("--external-id", default="", help="default: 'agent-<name>'")


def read_secret(options: dict[str, Any]) -> str:
    if options.get("secret_file"):
        return Path(options["secret_file"]).read_text().strip()
    return os.environ.get("AGENT_SECRET", "").strip() or (options.get("secret") or "").strip()


def build_config(options: dict[str, Any], secret: str) -> AgentConfig:
    previous = (options.get("previous_secret") or os.environ.get("AGENT_PREVIOUS_SECRET", "")).strip()
    return AgentConfig(
        key_id=f"{options['provider']}/{options.get('name') or 'default'}", secret=secret,
        work_dir=Path(options.get("work_dir") or "var/agent").resolve(), host=options.get("host") or "127.0.0.1",
        port=_port(options.get("port")), previous_secret=previous,
        previous_secret_until=time.time() + float(options.get("previous_secret_grace") or 0),
        slots=int(options.get("slots") or 1), max_time_limit_s=int(options.get("max_time_limit") or 604800),
        kill_grace_s=float(options.get("kill_grace") or 5.0))


def _port(value: Any) -> int:
    """The port to bind: 8701 when not given; 0 asks the OS for a free one."""
    return 8701 if value is None or value == "" else int(value)


def registration_payload(app: AgentApp, options: dict[str, Any], advertise_url: str) -> dict[str, Any]:
    config = app.config
    facts = machine_facts(config.work_dir)
    payload: dict[str, Any] = {"base_url": advertise_url, "slots": config.slots,
                               "active_jobs": app.store.count_active(), "machine": facts}
    if options.get("accelerator"):
        name = options.get("name") or "default"
        offer: dict[str, Any] = {
            "external_id": options.get("external_id") or f"agent-{name}",
            "name": options.get("offer_name") or f"{facts['hostname']} via reference agent",
            "accelerator": options["accelerator"], "count": int(options.get("accelerator_count") or 1),
            "vcpus": facts["vcpus"], "ram_gb": facts["ram_gb"], "disk_gb": facts["disk_gb"],
            "region": options.get("region") or "", "price_per_hour": str(options.get("price_per_hour") or "0.10"),
            "nodes_available": config.slots,
        }
        if options.get("memory_gb") is not None:
            offer["memory_gb"] = float(options["memory_gb"])
        payload["offer"] = offer
    return payload


def run(options: dict[str, Any]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s agent %(levelname)s %(message)s")
    secret = read_secret(options)
    if len(secret) < 16:
        log.error("a shared secret of at least 16 characters is required (--secret-file, $AGENT_SECRET, --secret)")
        return 2
    app = AgentApp(build_config(options, secret))
    server = AgentServer(app)
    host, port = server.server_address[:2]
    advertise = options.get("advertise_url") or f"http://{host}:{port}"
    registrar = None
    if options.get("broker"):
        registrar = Registrar(Registration(broker_url=options["broker"], key_id=app.config.key_id, secret=secret,
                                           payload=lambda: registration_payload(app, options, advertise),
                                           interval_s=float(options.get("heartbeat") or 30.0)))
        registrar.start()
    stop = threading.Event()

    def _stop(signum: int, _frame: Any) -> None:
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log.info("provider agent %s listening on http://%s:%s (work dir %s, %d slot(s))", app.config.key_id, host, port,
             app.config.work_dir, app.config.slots)
    print(f"listening on http://{host}:{port}", flush=True)  # the bound port, for scripts that asked for --port 0
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        if registrar is not None:
            registrar.stop()
        server.server_close()
        if options.get("kill_jobs_on_exit"):
            for job in app.store.active_jobs():
                app.runner.terminate(job.ref, wait_s=app.config.kill_grace_s + 1)
            log.info("provider agent stopped; its jobs were terminated")
        else:
            log.info("provider agent stopped; running jobs keep running and are adopted at the next start")
        app.runner.shutdown()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.agent", description="Reference provider agent.")
    add_arguments(parser)
    return run(vars(parser.parse_args(argv)))
