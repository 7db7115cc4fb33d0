"""Bounded soak: a steady mix of offer searches, recommendations and orders for a few minutes against the real
processes, then a drain: is anything lost, does anything degrade?

    python -m bench.soak_bench [--seconds 180 | --smoke] [--search-connections 3] [--recommend-connections 1]
                               [--order-rate 2] [--drain 120] [--keep-db]

1. Creates its own PostgreSQL database (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/bench_soak;
   dropped and created again, dropped at the end), migrates it, loads the demo catalog (~500 offers) and adds a
   provider with SOAK_OFFERS listed offers on the simulated driver (0.5 s boot, jobs exit by themselves after 2 s,
   so every order runs its whole lifecycle: reserved -> queued -> provisioning -> running -> stopping -> completed,
   then billing settles it). Customers pay as the product lets them: two with an operator's credit line
   (billing_set_overdraft), two with a saved test card (pm_card_visa) charged through the fake Stripe.
2. Starts, on 127.0.0.1 and free ports, what the Procfile starts: the fake Stripe (`manage.py fake_stripe`, webhooks
   to the web server), gunicorn with 2 sync workers, the Procfile's two Celery workers on the kind queues
   (broker/celery_routing.py) of a private base queue on BENCH_REDIS_URL (default $REDIS_URL, else
   redis://127.0.0.1:6379/14): `worker` (2 processes: provisioning, polling, default) and `billing` (1 process:
   billing, default), and celery beat (the reconcilers). The rate limits on recommendations and orders are raised
   for the bench (THROTTLE_*_RATE, printed), so it measures the server rather than its throttles.
3. Load (bench/loadgen.py run_streams): --search-connections closed-loop connections searching offers (rotating
   queries), --recommend-connections asking for recommendations, and orders paced at --order-rate per second
   (offer + nodes, a new Idempotency-Key each); --warmup seconds of the same mix first, not counted.
4. Drain: waits up to --drain seconds for every order of the soak's customers (accepted with a 201, or created by a
   request whose answer never came back) to reach a final state and its charge to settle. Lost = not final by then
   (or its charge not settled); provisioned twice = more than one provider job or more than one `running` event
   for one order. A failed order counts as an error: nothing is injected, so nothing should fail.
5. Reports throughput and p50/p99 per kind, errors, the order pipeline (create -> running / final), and, as the
   baseline measured in the same run, the last third of the run against the first: throughput, p99 and the RSS of
   the web server and the workers (each with all its child processes).
Targets: errors 0, lost 0, provisioned twice 0, last-third throughput >= 0.8 x first third. Exits 1 when one is
missed. Results also go to bench/results/soak.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

from bench.database import discard_database, prepare_database
from bench.loadgen import Request, Sample, Stream, run_streams
from bench.processes import (
    GUNICORN_WORKERS,
    ROOT,
    delete_queues,
    free_port,
    redis_url,
    start_celery,
    start_gunicorn,
    start_worker,
    stop,
    tree_usage,
)
from bench.results import percentile
from bench.soak_figures import KINDS, kind_figures, report, thirds, timeline, usage_figures
from broker.celery_routing import BILLING, DEFAULT, POLLING, PROVISIONING, kind_queue

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/bench_soak"
SOAK_OFFERS = 4
NODES_PER_OFFER = 400
# A job's 2 s at this node price is $0.56: above Stripe's $0.50 minimum, so card holds are captured, not voided.
PRICE_PER_HOUR = "1000.0000"
SIMULATED = {"boot_latency_s": 0.5, "run_duration_s": 2.0}
PIPELINE_ENV = {"ORDERS_POLL_INTERVAL_S": "0.5", "ORDERS_METER_INTERVAL_S": "1"}
# Rate limits (per user) high enough that the bench measures the server, not its throttles (which still run).
THROTTLE_ENV = {"THROTTLE_RECOMMENDATIONS_RATE": "100000/min", "THROTTLE_ORDERS_RATE": "100000/min"}
# The Procfile's Celery workers: name -> (queue kinds, processes).
WORKERS = {"worker": ((PROVISIONING, POLLING, DEFAULT), 2), "billing": ((BILLING, DEFAULT), 1)}
SEARCH_QUERIES = ("accelerator=H100 count>=8 price_per_hour<=40", "accelerator=A100",
                  "memory_gb>=80 price_per_hour<=20", "accelerator=L4", "count>=4")
RECOMMEND_REQUESTS = (
    {"resources": {"accelerator": "H100", "count": 8}, "duration_hours": 10, "objective": "cost"},
    {"workload": {"kind": "llm_inference", "model": "llama-3-70b", "tokens_per_second": 2000}, "duration_hours": 24,
     "objective": "balanced"},
    {"resources": {"accelerator": "A100", "count": 4}, "duration_hours": 3, "objective": "time"},
    {"workload": {"kind": "fine_tuning", "model": "llama-3-8b", "training_tokens": 2e8, "method": "lora"}},
)
FINAL_CHARGES = ("settled", "voided", "declined", "expired")
CUSTOMER_PREFIX = "soak-customer-"


# --- fixture ------------------------------------------------------------------------------------------------

def make_fixture() -> tuple[list[tuple[str, str]], list[int]]:
    """([(API token, payment method)] of the customers, ids of the soak offers)."""
    from django.core.management import call_command

    from marketplace.billing.services.customers import billing_profile_update, billing_set_overdraft
    from marketplace.models import Provider, User
    from marketplace.services.offers import offer_create
    from marketplace.services.tokens import token_create

    with open(os.devnull, "w") as sink:
        call_command("load_demo", stdout=sink)
    operator = User.objects.create_user(username="soak-operator", password=uuid.uuid4().hex, role="operator",
                                        is_staff=True)
    customers = []
    for n, method in enumerate(("credit", "card", "credit", "card")):
        user = User.objects.create_user(username=f"{CUSTOMER_PREFIX}{n}", password=uuid.uuid4().hex, role="customer")
        if method == "credit":
            billing_set_overdraft(operator=operator, customer=user, limit=Decimal("1000000.00"))
        else:
            billing_profile_update(user, default_payment_method="pm_card_visa")
        customers.append((token_create(user=user, name="soak")[1], method))
    Provider.objects.create(name="Soak Cloud", slug="soak-cloud")
    offers = [offer_create(user=operator, data={
        "provider": "soak-cloud", "external_id": f"soak-{n}", "name": f"soak 8x H100 #{n}", "accelerator": "H100 SXM",
        "count": 8, "region": "us-east-virginia", "price_per_hour": PRICE_PER_HOUR, "nodes_available": NODES_PER_OFFER,
        "status": "listed", "driver": "simulated"}) for n in range(SOAK_OFFERS)]
    return customers, [offer.pk for offer in offers]


def request_makers(customers: list[tuple[str, str]], offer_ids: list[int], run: str
                   ) -> dict[str, Callable[[int], Request]]:
    def auth(n: int) -> dict[str, str]:
        return {"Authorization": f"Token {customers[n % len(customers)][0]}", "Content-Type": "application/json"}

    def search(n: int) -> Request:
        q = SEARCH_QUERIES[n % len(SEARCH_QUERIES)]
        return Request("search", "GET", f"/api/v1/offers/?q={quote(q)}&ordering=price_per_hour", auth(n))

    def recommend(n: int) -> Request:
        body = json.dumps(RECOMMEND_REQUESTS[n % len(RECOMMEND_REQUESTS)]).encode()
        return Request("recommend", "POST", "/api/v1/recommendations/", auth(n), body)

    def order(n: int) -> Request:
        body = {"offer_id": offer_ids[n % len(offer_ids)], "nodes": 1,
                "job": {"command": "python train.py", "duration_hours": "0.05"},
                "payment": {"method": customers[n % len(customers)][1]}}
        return Request("order", "POST", "/api/v1/orders/", {**auth(n), "Idempotency-Key": f"{run}-{n}"},
                       json.dumps(body).encode(), keep_body=True)

    return {"search": search, "recommend": recommend, "order": order}


# --- processes ----------------------------------------------------------------------------------------------

def start_fake_stripe(env: dict[str, str], web_port: int, log_path: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    web = f"http://127.0.0.1:{web_port}/api/v1/stripe"
    process = subprocess.Popen(
        [sys.executable, "manage.py", "fake_stripe", "--port", str(port), "--webhook-url", f"{web}/webhook/",
         "--connect-webhook-url", f"{web}/connect-webhook/"],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log_path.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while "Fake Stripe" not in log_path.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            raise SystemExit(f"soak_bench: the fake Stripe did not start: {log_path.read_text()[-2000:]}")
        time.sleep(0.1)
    return process, port


def wait_worker(queue: str, worker: subprocess.Popen, timeout: float = 90) -> None:
    """A worker consumes once a built-in task sent to the queue only it serves comes back."""
    from celery.exceptions import TimeoutError as CeleryTimeout

    from broker.celery import app

    result = app.send_task("celery.accumulate", args=(1,), queue=queue)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise SystemExit(f"soak_bench: the worker exited with {worker.returncode}")
        try:
            result.get(timeout=1)
            return
        except CeleryTimeout:
            continue
    raise SystemExit("soak_bench: the worker did not start consuming")


class UsageSampler(threading.Thread):
    """RSS and CPU time of some process trees ({name: root pid}) every `interval` seconds."""

    def __init__(self, pids: dict[str, int], interval: float = 2.0) -> None:
        super().__init__(daemon=True)
        self.pids, self.interval = pids, interval
        self.samples: list[tuple[float, dict[str, tuple[float, float]]]] = []  # (t, {name: (MiB, CPU s)})
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            usage = tree_usage(*self.pids.values())
            self.samples.append((time.monotonic(), dict(zip(self.pids, usage, strict=True))))
            self.halt.wait(self.interval)


# --- drain and checks ---------------------------------------------------------------------------------------

def accepted_orders(samples: list[Sample]) -> list[int]:
    return [json.loads(s.body)["id"] for s in samples if s.kind == "order" and s.status == 201]


def drain(seconds: float) -> float:
    """Wait until every order of the soak's customers (accepted or not: a 201 may have been lost on the way) is
    final and its charge settled, or `seconds` pass; returns the seconds waited."""
    from marketplace.billing.models import OrderCharge
    from marketplace.orders.models import Order
    from marketplace.orders.states import FINAL

    started = time.monotonic()
    finals = [s.value for s in FINAL]
    while time.monotonic() - started < seconds:
        open_orders = Order.objects.filter(customer__username__startswith=CUSTOMER_PREFIX) \
            .exclude(state__in=finals).exists()
        open_charges = OrderCharge.objects.filter(order__customer__username__startswith=CUSTOMER_PREFIX) \
            .exclude(status__in=FINAL_CHARGES).exists()
        if not open_orders and not open_charges:
            break
        time.sleep(0.5)
    return time.monotonic() - started


def order_checks(ids: list[int], namespace: str, redis_address: str, run: tuple[float, float]) -> dict:
    """The orders after the drain; `run` = (epoch seconds when the measured run started, its length) for the create
    -> final time of the orders placed in each third of it (does the pipeline fall behind?)."""
    from django.db.models import Count, Q

    from marketplace.billing.models import OrderCharge
    from marketplace.orders.models import Order
    from marketplace.orders.states import FINAL
    from workers.drivers.simulated import SimulatedDriver

    sim = SimulatedDriver(redis_url=redis_address, namespace=namespace)
    orders = list(Order.objects.filter(customer__username__startswith=CUSTOMER_PREFIX)
                  .annotate(runs=Count("events", filter=Q(events__to_state="running"))))
    accepted = set(ids)
    states: dict[str, int] = {}
    failures: dict[str, int] = {}
    twice, created_to_running, created_to_final = 0, [], []
    final_by_third: list[list[float]] = [[], [], []]
    for order in orders:
        states[order.state] = states.get(order.state, 0) + 1
        if order.state == "failed":
            failures[order.failure_code] = failures.get(order.failure_code, 0) + 1
        jobs = sum(sim.jobs_created(order.provider_key(a)) for a in range(1, order.attempt + 1))
        twice += jobs > 1 or order.runs > 1
        if order.running_at:
            created_to_running.append((order.running_at - order.created_at).total_seconds() * 1000)
        if order.finished_at:
            created_to_final.append((order.finished_at - order.created_at).total_seconds() * 1000)
            offset = order.created_at.timestamp() - run[0]
            if 0 <= offset < run[1]:
                final_by_third[int(offset / (run[1] / 3))].append(created_to_final[-1])
    finals = {s.value for s in FINAL}
    charges: dict[str, int] = {}
    charged = set()
    for order_id, status in OrderCharge.objects.filter(order_id__in=[o.pk for o in orders]) \
            .values_list("order_id", "status"):
        charges[status] = charges.get(status, 0) + 1
        charged.add(order_id)
    return {
        "accepted": len(accepted), "in_database": len(orders),
        "not_acknowledged": sum(1 for o in orders if o.pk not in accepted),
        "lost": sum(1 for o in orders if o.state not in finals),
        "failed": sum(failures.values()), "failure_codes": failures, "provisioned_twice": twice,
        "states": states, "charges": charges,
        "unsettled_charges": sum(n for status, n in charges.items() if status not in FINAL_CHARGES),
        "missing_charges": len(accepted - charged),
        "driver_jobs": sim.jobs_created(), "driver_create_calls": sim.create_calls(),
        "create_to_running_ms": {"p50": percentile(created_to_running, 50), "p99": percentile(created_to_running, 99)},
        "create_to_final_ms": {"p50": percentile(created_to_final, 50), "p99": percentile(created_to_final, 99)},
        "create_to_final_p99_ms_by_third": [percentile(part, 99) for part in final_by_third],
    }


# --- main ---------------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Bounded soak: searches, recommendations and orders, then a drain.")
    parser.add_argument("--seconds", type=float, default=180.0, help="measured duration (default 180)")
    parser.add_argument("--smoke", action="store_true", help="a quick run: 20 s, 8 s warm-up, 60 s drain window")
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--search-connections", type=int, default=3)
    parser.add_argument("--recommend-connections", type=int, default=1)
    parser.add_argument("--order-rate", type=float, default=2.0, help="orders per second (2 paced connections)")
    parser.add_argument("--drain", type=float, default=120.0, help="seconds for accepted orders to reach final")
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args(argv)
    if args.smoke:
        args.seconds, args.warmup, args.drain = 20.0, 8.0, 60.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_before = os.getloadavg()[0]
    database_url = os.environ.get("BENCH_DATABASE_URL") or DEFAULT_DATABASE_URL
    redis_address = redis_url()
    queue = f"bench-soak-{uuid.uuid4().hex[:8]}"
    namespace = f"soak-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRIPE_")}  # dev mode: the fake's keys
    env.update({"DATABASE_URL": database_url, "REDIS_URL": redis_address, "CELERY_QUEUE": queue, "BROKER_DEV": "1",
                "DEBUG": "0", "LOG_LEVEL": "WARNING", "DJANGO_SETTINGS_MODULE": "broker.settings",
                "BROKER_DRIVER_CONFIG": json.dumps({"simulated": {"namespace": namespace, **SIMULATED}}),
                **PIPELINE_ENV, **THROTTLE_ENV})
    web_port = free_port()
    for name in [k for k in os.environ if k.startswith("STRIPE_")]:
        del os.environ[name]
    os.environ.update(env)
    print(f"soak_bench: database {database_url}, Redis {redis_address}, queue {queue}", flush=True)
    prepare_database(database_url)
    import django

    django.setup()
    import redis
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    from workers.drivers.simulated import SimulatedDriver

    var = Path(settings.VAR_DIR)
    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)
    processes: list[subprocess.Popen] = []
    beat_dir = tempfile.mkdtemp(prefix="soak-beat-", dir=var)
    try:
        call_command("migrate", verbosity=0)
        customers, offer_ids = make_fixture()
        connection.close()
        stripe, stripe_port = start_fake_stripe(env, web_port, var / "soak_stripe.log")
        processes.append(stripe)
        env["STRIPE_API_BASE"] = os.environ["STRIPE_API_BASE"] = f"http://127.0.0.1:{stripe_port}"
        web = start_gunicorn(web_port, env, "/signin/", log_path=var / "soak_web.log")
        processes.append(web)
        workers = {name: start_worker(env, queue, var / f"soak_{name}.log", kinds=kinds, concurrency=count, name=name)
                   for name, (kinds, count) in WORKERS.items()}
        processes.extend(workers.values())
        processes.append(start_celery(env, ["beat", "--loglevel", "WARNING", "--schedule",
                                            str(Path(beat_dir) / "schedule")], var / "soak_beat.log"))
        for name, (kinds, _) in WORKERS.items():
            wait_worker(kind_queue(kinds[0], queue), workers[name])
        print(f"soak_bench: ready (web :{web_port}, fake Stripe :{stripe_port}); warm-up {args.warmup:g} s, "
              f"then {args.seconds:g} s", flush=True)
        sampler = UsageSampler({"web": web.pid, **{name: w.pid for name, w in workers.items()}})
        sampler.start()

        def load(seconds: float, run: str) -> list[Sample]:
            makers = request_makers(customers, offer_ids, run)
            streams = [Stream(makers["search"], args.search_connections),
                       Stream(makers["recommend"], args.recommend_connections),
                       Stream(makers["order"], 2 if args.order_rate > 0 else 0, rate=args.order_rate)]
            return asyncio.run(run_streams("127.0.0.1", web_port, [s for s in streams if s.connections], seconds))

        warm = load(args.warmup, f"warm-{queue}")
        started, started_epoch, load_start = time.monotonic(), time.time(), os.getloadavg()[0]
        samples = load(args.seconds, f"run-{queue}")
        sampler.halt.set()
        sampler.join()
        ids = accepted_orders(warm) + accepted_orders(samples)
        print(f"soak_bench: load done; draining {len(ids)} accepted orders (up to {args.drain:g} s)", flush=True)
        drained_s = drain(args.drain)
        checks = order_checks(ids, namespace, redis_address, (started_epoch, args.seconds))
        failed_requests = [s for s in warm + samples if not s.ok]
        figures = {
            "seconds": args.seconds, "warmup": args.warmup, "order_rate": args.order_rate,
            "search_connections": args.search_connections, "recommend_connections": args.recommend_connections,
            "gunicorn_workers": GUNICORN_WORKERS, "load_before": load_before, "throttle_env": THROTTLE_ENV,
            "celery_workers": {name: {"queues": list(kinds), "processes": count}
                               for name, (kinds, count) in WORKERS.items()},
            "run": {**{k: kind_figures([s for s in samples if s.kind == k], args.seconds) for k in KINDS},
                    "all": kind_figures(samples, args.seconds)},
            "thirds": thirds(samples, args.seconds),
            "memory": usage_figures(sampler.samples, started, args.seconds),
            "timeline_per_s": timeline(samples, args.seconds), "load_during": [load_start, os.getloadavg()[0]],
            "orders": checks, "drain_s": drained_s, "failed_requests": len(failed_requests),
            "errors_total": len(failed_requests),
            "error_examples": [f"{s.kind} {s.status} {s.body[:200]!r}" for s in failed_requests[:5]]}
        for name, process in {"web": web, **workers}.items():
            if process.poll() is not None:
                raise SystemExit(f"soak_bench: the {name} process died during the run ({process.returncode})")
    finally:
        for process in reversed(processes):
            stop(process)
        client = redis.Redis.from_url(redis_address)
        delete_queues(client, queue)
        SimulatedDriver(redis_url=redis_address, namespace=namespace).reset()
        shutil.rmtree(beat_dir, ignore_errors=True)
        connection.close()
        if not args.keep_db:
            discard_database(database_url)
    tracebacks = sum(path.read_text(errors="replace").count("Traceback")
                     for path in var.glob("soak_*.log"))
    if tracebacks:
        figures["errors_total"] += tracebacks
        figures["error_examples"].append(f"{tracebacks} tracebacks logged: see {var}/soak_*.log")
    figures["logged_tracebacks"] = tracebacks
    return 0 if report(args, figures) else 1


if __name__ == "__main__":
    sys.exit(main())
