"""Orders end to end (create -> running) through real Celery workers, beside a no-op Celery task on the same Redis.

    python -m bench.orders_bench [--orders 600] [--noop 4000] [--rounds 5] [--clients 1] [--threads 4] [--keep-db]

1. Creates its own PostgreSQL database (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/bench_orders;
   dropped and created again; or BENCH_DATABASE_URL=sqlite:///path), migrates it, and creates a customer, a provider
   and one simulated offer with enough capacity for every order (boot latency 0, so "running" is reached as soon as
   the pipeline gets there).
2. Starts one `celery worker --concurrency 2` (2 worker processes) on a private base queue of BENCH_REDIS_URL
   (default $REDIS_URL, else redis://127.0.0.1:6379/14) and every kind queue derived from it
   (broker/celery_routing.py), with this module included so it also knows the no-op task (sent to the base queue).
3. No-op baseline: publishes --noop tasks that do nothing (ignore_result, acks_late like the order tasks) and
   times them until the queue is empty and nothing is left unacknowledged.
4. Orders: --clients client processes (like web server workers) x --threads threads POST /api/v1/orders/
   (token auth, Idempotency-Key) for --orders orders from one quote, through the project's WSGI application in
   the client process (every middleware, DRF, the view: what a WSGI server runs per request, without its HTTP
   parsing). The default is one process with four threads, like one gunicorn gthread worker: on these two cores,
   shared with the worker's two processes, PostgreSQL and Redis, a second API process only added context
   switches and cache misses (API CPU per order 4.0 ms with 1 x 4, 5.7 ms with 2 x 4 and 7.8 ms with 8 x 1, same
   code; one process still has ~50 % headroom at the end-to-end rate). Each
   thread first places one order of its own, provisioned before the run starts: its database connection is open
   and its statements prepared, as in a web server worker that has served requests before (the run measures
   that steady state, not a connection's setup). Each order's latency is its POST start -> its `running_at`
   (stamped by the worker in the same transaction as provisioning -> running).
   - end to end: the clients POST while the workers run. Throughput = orders / (last running_at - first POST).
     On a 2-core machine the API clients take CPU the workers would use, as the baseline's publisher does. This
     is the issue's figure ("end-to-end orders per second, create -> running"): the target (>= 0.2) applies to
     its ratio; it is also the source of the create -> running p50/p99. It runs in --rounds rounds, each a
     no-op run then an end-to-end run, and the verdict takes the median round's ratio: on a shared host whose
     speed drifts by 20 % within a minute, each end-to-end run is compared with the baseline measured beside it.
   - pipeline (once, after the rounds): the worker's processes are paused (SIGSTOP) while the clients place the
     orders (placed, paid and queued through the API as above), then resumed: throughput = orders / (last
     running_at - resume). This is the baseline's shape (tasks waiting in Redis, the 2 worker processes with the
     machine to themselves), printed for information (what the pipeline costs apart from the API). Order
     creation is throttled per customer (THROTTLE_ORDERS_RATE): off here.
5. Prints each round, p50/p99 create -> running, the ratios and PASS/FAIL against >= 0.2, and the CPU each order
   cost: in the client processes (the API request), in the worker's processes (the pipeline up to running) and
   in the local PostgreSQL and Redis servers (every process named postgres / redis-server, end to end runs),
   beside the worker CPU of one no-op task (wall timings on a shared machine are noisy; these are steadier).
   Results also go to bench/results/orders.json. Exits 1 when the target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path

from celery import shared_task

from bench.database import discard_database, prepare_database
from bench.processes import WORKER_PROCESSES, command_cpu_s, delete_queues, redis_url, start_worker, stop, tree_usage
from bench.results import percentile, verdict, write_results

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/bench_orders"
SERVERS = ("postgres", "redis-server")  # the local servers whose CPU is counted (command names)
TARGET_RATIO = 0.2


@shared_task(name="bench.orders_bench.noop", acks_late=True, ignore_result=True)
def noop() -> None:
    """The baseline: a task that does nothing (same options as the order tasks)."""


# --- setup --------------------------------------------------------------------------------------------------

def make_fixture(orders: int) -> tuple[str, str]:
    """(API token, quote id): a customer, a provider, one listed simulated offer with `orders` nodes, a quote."""
    from datetime import timedelta

    from django.utils import timezone

    from marketplace.models import Accelerator, Offer, Provider, Quote, Region, User
    from marketplace.services.tokens import token_create

    customer = User.objects.create_user(username="bench-customer", password=uuid.uuid4().hex, role="customer")
    operator = User.objects.create_user(username="bench-operator", password=uuid.uuid4().hex, role="operator",
                                        is_staff=True)
    from marketplace.billing.services.customers import billing_set_overdraft

    billing_set_overdraft(operator=operator, customer=customer, limit=Decimal("10000000.00"))
    provider = Provider.objects.create(name="Bench Cloud", slug="bench-cloud")
    offer = Offer.objects.create(
        provider=provider, external_id="bench-h100x8", name="bench 8x H100",
        accelerator=Accelerator.objects.get(canonical_name="NVIDIA H100-SXM5-80GB"), accelerator_count=8,
        accelerator_memory_gb=80, vcpus=96, ram_gb=1024, region=Region.objects.get(key="us-east-virginia"),
        price_per_hour=Decimal("20.0000"), nodes_available=orders + 50, status="listed", driver="simulated")
    now = timezone.now()
    quote = Quote.objects.create(
        user=customer, request={"bench": True}, objective="cost", created_at=now, expires_at=now + timedelta(hours=2),
        alternatives=[{"rank": 1, "offer_id": offer.pk, "provider": provider.slug, "accelerator": "H100",
                       "count": 8, "nodes": 1, "region": "us-east-virginia", "node_price_per_hour": "20.0000",
                       "price_per_hour": "20.0000", "est_hours": 1.0, "est_total_usd": "20.00"}])
    _, key = token_create(user=customer, name="bench")
    return key, str(quote.id)


def wait_ready(client, queue: str, process: subprocess.Popen, timeout: float = 60) -> None:
    """The worker is consuming once a probe task published to its queue has been taken and acknowledged."""
    noop.apply_async(queue=queue)
    deadline = time.monotonic() + timeout
    while not drained(client, queue):
        if process.poll() is not None:
            raise SystemExit(f"orders_bench: the worker exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise SystemExit("orders_bench: the worker did not start consuming")
        time.sleep(0.05)


def drained(client, queue: str) -> bool:
    """No no-op task waiting in the queue or delivered but unacknowledged (acks_late: acked after it ran). The
    order pipeline's meter tasks, held by the worker until their countdown, do not count."""
    if client.llen(queue):
        return False
    for raw in client.hvals("unacked"):
        message, _exchange, routing_key = json.loads(raw)
        if routing_key == queue and message["headers"]["task"] == noop.name:
            return False
    return True


# --- measurements -------------------------------------------------------------------------------------------

def measure_noop(client, queue: str, count: int, worker_pid: int) -> tuple[float, float]:
    """(no-op tasks per second, worker CPU ms per task): publish `count`, wait until all were run and acknowledged."""
    cpu = process_cpu_s(worker_pid)
    start = time.perf_counter()
    with noop.app.producer_or_acquire() as producer:
        for _ in range(count):
            noop.apply_async(queue=queue, producer=producer)
    while not drained(client, queue):
        time.sleep(0.01)
    elapsed = time.perf_counter() - start
    return count / elapsed, (process_cpu_s(worker_pid) - cpu) * 1000 / count


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and its live children (the worker's pool)."""
    return tree_usage(pid)[0][1]


class WsgiClient:
    """POSTs JSON to the project's WSGI application in this process, as a WSGI server calls it (broker.wsgi's
    application, every middleware, DRF): the request's environ built here instead of parsed from HTTP. Django's
    test client (used before) also connects and disconnects its template and exception signals around every
    request and keeps each response's context: test instrumentation, ~0.3 ms per order of this bench's API CPU."""

    def __init__(self, token: str) -> None:
        from django.core.wsgi import get_wsgi_application

        self.application = get_wsgi_application()
        self.headers = {"HTTP_AUTHORIZATION": f"Token {token}", "HTTP_HOST": "127.0.0.1",
                        "CONTENT_TYPE": "application/json", "HTTP_ACCEPT": "application/json"}

    def post(self, path: str, body: dict, idempotency_key: str) -> tuple[int, bytes]:
        import io

        data = json.dumps(body).encode()
        environ = {"REQUEST_METHOD": "POST", "PATH_INFO": path, "QUERY_STRING": "", "SCRIPT_NAME": "",
                   "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
                   "REMOTE_ADDR": "127.0.0.1", "CONTENT_LENGTH": str(len(data)), "wsgi.input": io.BytesIO(data),
                   "wsgi.errors": sys.stderr, "wsgi.url_scheme": "http", "wsgi.version": (1, 0),
                   "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False,
                   "HTTP_IDEMPOTENCY_KEY": idempotency_key, **self.headers}
        status: list[str] = []
        chunks = self.application(environ, lambda code, headers, exc_info=None: status.append(code))
        try:
            content = b"".join(chunks)
        finally:
            getattr(chunks, "close", lambda: None)()
        return int(status[0].split()[0]), content


def _post_orders(token: str, quote_id: str, keys: list[str], threads: int, ready, go) -> tuple[
        dict[int, float], list[str], float]:
    """POST one order per key from `threads` threads of this process: ({order id: POST start}, errors, CPU seconds
    this process spent from the start signal). Each thread first places one order of its own (its database
    connection opened, the statements it runs prepared on it: a web server worker's steady state), then the
    process says it is ready and waits for the start signal."""
    from django.db import connections

    starts: dict[int, float] = {}
    errors: list[str] = []
    lock = threading.Lock()
    warmed = threading.Barrier(threads + 1)
    start = threading.Event()
    client = WsgiClient(token)
    body = {"quote_id": quote_id, "job": {"command": "python serve.py", "duration_hours": "1"}}

    def run(thread: int) -> None:
        try:
            status, content = client.post("/api/v1/orders/", body, f"warm-{uuid.uuid4().hex}")
            if status != 201:
                errors.append(f"warm-up: {status} {content[:200]!r}")
            warmed.wait()
            start.wait()
            for key in keys[thread::threads]:
                began = time.time()
                status, content = client.post("/api/v1/orders/", body, key)
                with lock:
                    if status == 201:
                        starts[json.loads(content)["id"]] = began
                    else:
                        errors.append(f"{status} {content[:200]!r}")
        finally:
            connections.close_all()

    pool = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for t in pool:
        t.start()
    warmed.wait()
    ready.release()
    go.wait()
    cpu = time.process_time()
    start.set()
    for t in pool:
        t.join()
    return starts, errors, time.process_time() - cpu


def _creator(token: str, quote_id: str, keys: list[str], threads: int, ready, go, results) -> None:
    """A client process (like one web server worker): Django set up and its threads warmed before the start
    signal."""
    import django

    django.setup()
    results.put(_post_orders(token, quote_id, keys, threads, ready, go))


def measure_orders(token: str, quote_id: str, count: int, processes: int, threads: int, prefix: str,
                   worker_pid: int, *, paused: bool = False) -> tuple[float, list[float], int, dict[str, float]]:
    """(orders/s create -> running, per-order latencies in ms, errors, CPU ms per order: "api" in the client
    processes, "worker" in the worker's processes).

    End to end (paused=False): the clients POST while the workers run; throughput = orders / (last running_at -
    first POST). Pipeline (paused=True): the worker's processes are stopped (SIGSTOP) while the clients POST, and
    resumed once every order is placed and queued, like the baseline's no-op tasks waiting in Redis; throughput =
    orders / (last running_at - resume). The worker CPU is counted from the resume in both."""
    import multiprocessing
    import signal

    from marketplace.orders.models import Order

    context = multiprocessing.get_context("spawn")
    ready, go, results = context.Semaphore(0), context.Event(), context.Queue()
    keys = [f"{prefix}-{n}" for n in range(count)]
    children = [context.Process(target=_creator, args=(token, quote_id, keys[p::processes], threads, ready, go,
                                                       results)) for p in range(processes)]
    for child in children:
        child.start()
    for _ in children:
        ready.acquire()
    warming = Order.objects.filter(idempotency_key__startswith="warm-", running_at__isnull=True)
    deadline = time.monotonic() + 60
    while warming.exists():  # the clients' warm-up orders: provisioned before the measurement starts
        if time.monotonic() > deadline:
            raise SystemExit("orders_bench: the clients' warm-up orders did not reach running within 60 s")
        time.sleep(0.05)
    if paused:
        os.killpg(worker_pid, signal.SIGSTOP)
    try:
        worker_cpu = process_cpu_s(worker_pid)
        servers_before = command_cpu_s(*SERVERS)
        first = time.time()
        go.set()
        starts: dict[int, float] = {}
        errors: list[str] = []
        api_cpu = 0.0
        for _ in children:
            part, failed, cpu = results.get(timeout=600)
            starts.update(part)
            errors += failed
            api_cpu += cpu
        for child in children:
            child.join()
        created = time.time() - first
    finally:
        if paused:
            first = time.time()
            os.killpg(worker_pid, signal.SIGCONT)
    ids = list(starts)
    deadline = time.monotonic() + 300
    # A cheap poll (an id range, not an IN list of every id, five times a second): it runs while the workers drain
    # the pipeline run, on the same cores. The figures come from the running_at the workers stamp, not from it.
    batch = Order.objects.filter(pk__gte=min(ids), pk__lte=max(ids)) if ids else Order.objects.none()
    while batch.filter(running_at__isnull=True).exists():
        if time.monotonic() > deadline:
            raise SystemExit("orders_bench: orders did not all reach running within 300 s")
        time.sleep(0.2)
    worker_cpu = process_cpu_s(worker_pid) - worker_cpu
    running = dict(Order.objects.filter(pk__in=ids).values_list("pk", "running_at"))
    stuck = Order.objects.filter(pk__in=ids).exclude(state="running").count()
    latencies = sorted((running[i].timestamp() - starts[i]) * 1000 for i in ids)
    last = max(r.timestamp() for r in running.values())
    print(f"orders_bench: {len(ids)} orders created in {created:.2f} s ({len(ids) / created:.1f}/s through the API), "
          f"all running {last - first:.2f} s after {'the workers resumed' if paused else 'the first POST'}",
          flush=True)
    for error in errors[:5]:
        print(f"orders_bench: error: {error}")
    servers = command_cpu_s(*SERVERS)
    per_order = 1000 / max(1, len(ids))
    cpu = {"api": api_cpu * per_order, "worker": worker_cpu * per_order,
           "postgres": (servers["postgres"] - servers_before["postgres"]) * per_order,
           "redis": (servers["redis-server"] - servers_before["redis-server"]) * per_order}
    return len(ids) / (last - first), latencies, len(errors) + stuck, cpu


# --- main ---------------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Orders create -> running vs a no-op Celery task.")
    parser.add_argument("--orders", type=int, default=600)
    parser.add_argument("--noop", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=5, help="(no-op, end to end) pairs, one after the other")
    parser.add_argument("--clients", type=int, default=1, help="client processes (like web server workers)")
    parser.add_argument("--threads", type=int, default=4, help="threads per client process")
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args(argv)

    database_url = os.environ.get("BENCH_DATABASE_URL") or DEFAULT_DATABASE_URL
    queue = f"bench-orders-{uuid.uuid4().hex[:8]}"
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    redis_address = redis_url()
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_address, "CELERY_QUEUE": queue,
           "BROKER_DEV": "1", "DEBUG": "0", "LOG_LEVEL": "WARNING", "DJANGO_SETTINGS_MODULE": "broker.settings",
           "BROKER_DRIVER_CONFIG": json.dumps({"simulated": {"namespace": namespace, "boot_latency_s": 0}}),
           "ORDERS_METER_INTERVAL_S": "3600", "THROTTLE_ORDERS_RATE": "off"}
    os.environ.update(env)
    print(f"orders_bench: database {database_url}, Redis {redis_address}, queue {queue}", flush=True)
    prepare_database(database_url)
    import django

    django.setup()
    import redis
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    from workers.drivers.simulated import SimulatedDriver

    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)
    client = redis.Redis.from_url(redis_address)
    log_path = Path(settings.VAR_DIR) / "orders_bench_worker.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    worker = None
    rounds: list[dict] = []
    try:
        call_command("migrate", verbosity=0)
        # The warm-up run, each round's and the pipeline's orders, and each client thread's warm-up order per run.
        runs = args.rounds + 2
        token, quote_id = make_fixture((args.rounds + 1) * args.orders + 40 + runs * args.clients * args.threads + 10)
        connection.close()
        worker = start_worker(env, queue, log_path, include="bench.orders_bench")
        wait_ready(client, queue, worker)
        print(f"orders_bench: worker ready ({WORKER_PROCESSES} processes); warming up", flush=True)
        measure_noop(client, queue, 200, worker.pid)
        measure_orders(token, quote_id, 40, args.clients, args.threads, "warmup", worker.pid)
        # Each end-to-end run beside a no-op run just before it: a machine whose speed drifts during the bench
        # (a shared host) weighs on both figures of a round alike; the verdict takes the median round.
        for number in range(args.rounds):
            noop_rate, noop_cpu = measure_noop(client, queue, args.noop, worker.pid)
            rate, latencies, errors, cpu = measure_orders(token, quote_id, args.orders, args.clients, args.threads,
                                                          f"run{number}", worker.pid)
            rounds.append({"noop": noop_rate, "noop_cpu": noop_cpu, "rate": rate, "ratio": rate / noop_rate,
                           "latencies": latencies, "errors": errors, "cpu": cpu})
            print(f"orders_bench: round {number + 1}: {rate:.1f} orders/s beside {noop_rate:.1f} no-op tasks/s "
                  f"-> {rate / noop_rate:.3f}", flush=True)
        pipe_rate, _, pipe_errors, pipe_cpu = measure_orders(token, quote_id, args.orders, args.clients,
                                                             args.threads, "pipeline", worker.pid, paused=True)
        noop_after, _ = measure_noop(client, queue, args.noop, worker.pid)
    finally:
        if worker is not None:
            stop(worker)
        delete_queues(client, queue)
        SimulatedDriver(redis_url=redis_address, namespace=namespace).reset()
        connection.close()
        if not args.keep_db:
            discard_database(database_url)

    return report(args, rounds, pipe_rate, pipe_cpu, pipe_errors, noop_after,
                  "PostgreSQL" if database_url.startswith("postgres") else "SQLite", redis_address)


def report(args, rounds: list[dict], pipe_rate: float, pipe_cpu: dict, pipe_errors: int, noop_after: float,
           engine: str, redis_address: str) -> int:
    """Print the figures, write bench/results/orders.json; 0 when the median round meets the target."""
    ratios = sorted(r["ratio"] for r in rounds)
    end_to_end = statistics.median(ratios)
    median_round = min(rounds, key=lambda r: abs(r["ratio"] - end_to_end))
    errors = sum(r["errors"] for r in rounds) + pipe_errors
    ok = end_to_end >= TARGET_RATIO and errors == 0  # the figure: end to end, create -> running
    latencies = sorted(ms for r in rounds for ms in r["latencies"])
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    noop_rates = [r["noop"] for r in rounds]
    pipe_baseline = statistics.median([*noop_rates, noop_after])
    cpu = {key: statistics.mean(r["cpu"][key] for r in rounds) for key in ("api", "worker", "postgres", "redis")}
    noop_cpu = min(r["noop_cpu"] for r in rounds)
    print()
    print(f"Orders create -> running: {args.orders} orders POSTed by {args.clients} client process(es) x "
          f"{args.threads} threads (the API in-process through the WSGI application),")
    print("  simulated driver with zero boot latency,")
    print(f"  1 celery worker x {WORKER_PROCESSES} processes, {engine}, Redis {redis_address}")
    print()
    for number, r in enumerate(rounds, 1):
        print(f"  round {number}: no-op tasks/s {r['noop']:8.1f}   end to end orders/s {r['rate']:7.1f}   "
              f"ratio {r['ratio']:.3f}")
    print(f"  pipeline orders/s (queued -> running, the workers alone, like the baseline): {pipe_rate:9.1f}")
    print(f"  end to end orders/s (create -> running, the API on the same cores), median round: "
          f"{median_round['rate']:.1f}")
    print(f"  create -> running p50 / p99 (end to end, every round):  {p50:9.1f} / {p99:.1f} ms")
    print(f"  CPU ms per order: API {cpu['api']:.2f} (client processes), worker {pipe_cpu['worker']:.2f} "
          f"(end to end: {cpu['worker']:.2f}); per no-op task: worker {noop_cpu:.2f}")
    print(f"  server CPU ms per order (end to end; every process of the local servers): PostgreSQL "
          f"{cpu['postgres']:.2f}, Redis {cpu['redis']:.2f}")
    print(f"  errors: {errors}")
    print()
    print(f"  ratio pipeline orders/s / no-op tasks/s (median no-op run): {pipe_rate / pipe_baseline:.3f}  "
          f"(information: the workers alone)")
    print(f"  ratio end to end orders/s / no-op tasks/s, median of {len(rounds)} rounds: {end_to_end:.3f}  "
          f"(rounds {', '.join(f'{r:.3f}' for r in ratios)}; target >= {TARGET_RATIO})   {verdict(ok)}")
    write_results("orders", {
        "orders": args.orders, "rounds": len(rounds), "client_processes": args.clients, "threads": args.threads,
        "worker_processes": WORKER_PROCESSES, "database": engine,
        "orders_per_s": pipe_rate, "end_to_end_orders_per_s": median_round["rate"], "end_to_end_ratio": end_to_end,
        "round_ratios": [r["ratio"] for r in rounds],
        "p50_ms": p50, "p99_ms": p99, "noop_per_s": {"rounds": noop_rates, "after": noop_after},
        "cpu_ms_per_order": {"api": cpu["api"], "worker": pipe_cpu["worker"], "worker_end_to_end": cpu["worker"],
                             "postgres_end_to_end": cpu["postgres"], "redis_end_to_end": cpu["redis"]},
        "noop_worker_cpu_ms": noop_cpu,
        "ratio": pipe_rate / pipe_baseline, "target": TARGET_RATIO, "errors": errors, "pass": ok})
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
