"""The soak's figures (bench/soak_bench.py): per kind, per third and per tenth of the run, RSS and CPU of the
processes, and the report with its targets."""

from __future__ import annotations

import argparse
import os

from bench.loadgen import Sample
from bench.results import percentile, verdict, write_results

TARGET_THROUGHPUT_RATIO = 0.8
KINDS = ("search", "recommend", "order")


# --- figures ------------------------------------------------------------------------------------------------

def kind_figures(samples: list[Sample], seconds: float) -> dict:
    ok = [s.latency_s * 1000 for s in samples if s.ok]
    return {"requests": len(samples), "per_s": len(ok) / seconds, "p50_ms": percentile(ok, 50),
            "p99_ms": percentile(ok, 99), "errors": sum(1 for s in samples if not s.ok)}


def thirds(samples: list[Sample], seconds: float) -> list[dict]:
    """Figures of each third of the run, by the time each answer came in (late answers count in the last)."""
    parts: list[list[Sample]] = [[], [], []]
    for s in samples:
        parts[min(2, int(min(s.finished, seconds) / (seconds / 3)))].append(s)
    return [{"all": kind_figures(part, seconds / 3),
             **{kind: kind_figures([s for s in part if s.kind == kind], seconds / 3) for kind in KINDS}}
            for part in parts]


def usage_figures(samples: list[tuple[float, dict[str, tuple[float, float]]]], started: float,
                  seconds: float) -> dict:
    """Per process tree, from samples (time.monotonic(), {name: (MiB, CPU seconds)}): RSS at start and end and its
    mean over the first and last third of the run; CPU used (cores busy on average) in each third."""
    out = {}
    for name in samples[0][1]:
        series = [(t - started, *usage[name]) for t, usage in samples if t >= started] or \
            [(0.0, *samples[-1][1][name])]
        first = [mb for t, mb, _ in series if t < seconds / 3] or [series[0][1]]
        last = [mb for t, mb, _ in series if t >= 2 * seconds / 3] or [series[-1][1]]
        first_mb, last_mb = sum(first) / len(first), sum(last) / len(last)
        cores = []
        for third in range(3):
            window = [(t, cpu) for t, _, cpu in series if third * seconds / 3 <= t <= (third + 1) * seconds / 3]
            span = window[-1][0] - window[0][0] if len(window) > 1 else 0.0
            cores.append((window[-1][1] - window[0][1]) / span if span else float("nan"))
        out[name] = {"start_mb": series[0][1], "end_mb": series[-1][1], "first_third_mb": first_mb,
                     "last_third_mb": last_mb, "growth_mb": last_mb - first_mb,
                     "growth_ratio": last_mb / first_mb if first_mb else float("nan"), "cpu_cores_by_third": cores}
    return out


def timeline(samples: list[Sample], seconds: float, buckets: int = 10) -> list[float]:
    """Answered requests per second in each tenth of the run."""
    counts = [0] * buckets
    for s in samples:
        if s.ok:
            counts[min(buckets - 1, int(min(s.finished, seconds) / (seconds / buckets)))] += 1
    return [c / (seconds / buckets) for c in counts]


def report(args: argparse.Namespace, figures: dict) -> bool:
    run, parts, checks, memory = figures["run"], figures["thirds"], figures["orders"], figures["memory"]
    ratio = parts[2]["all"]["per_s"] / parts[0]["all"]["per_s"] if parts[0]["all"]["per_s"] else 0.0
    errors = figures["errors_total"] + checks["failed"]  # nothing is injected: an order that fails is an error
    targets = {"errors": errors == 0, "lost": checks["lost"] == 0 and checks["unsettled_charges"] == 0
               and checks["missing_charges"] == 0, "twice": checks["provisioned_twice"] == 0,
               "throughput": ratio >= TARGET_THROUGHPUT_RATIO}
    print()
    print(f"Soak: {args.seconds:g} s (after {args.warmup:g} s warm-up) against gunicorn "
          f"{figures['gunicorn_workers']} sync workers"
          " + Celery workers " + ", ".join(f"{n} x {w['processes']} ({'/'.join(w['queues'])})"
                                           for n, w in figures["celery_workers"].items())
          + " + beat + the fake Stripe, PostgreSQL")
    print(f"  load: {args.search_connections} search + {args.recommend_connections} recommendation connections "
          f"(closed loop), orders paced at {args.order_rate:g}/s; asyncio client on the same machine")
    print(f"  rate limits for the bench: {', '.join(f'{k}={v}' for k, v in figures['throttle_env'].items())}")
    print()
    print(f"  {'kind':<11}{'requests':>9}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
    for kind in (*KINDS, "all"):
        r = run[kind]
        print(f"  {kind:<11}{r['requests']:>9}{r['per_s']:>9.1f}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}{r['errors']:>8}")
    print()
    print(f"  {'third':<11}{'req/s':>9}{'p99 ms':>9}   per kind req/s (search / recommend / order)")
    for name, part in zip(("first", "middle", "last"), parts, strict=True):
        print(f"  {name:<11}{part['all']['per_s']:>9.1f}{part['all']['p99_ms']:>9.1f}   "
              + " / ".join(f"{part[k]['per_s']:.1f}" for k in KINDS))
    p99_ratio = parts[2]["all"]["p99_ms"] / parts[0]["all"]["p99_ms"] if parts[0]["all"]["p99_ms"] else 0.0
    print(f"  last/first third: throughput x{ratio:.2f}, p99 x{p99_ratio:.2f}")
    print("  req/s by tenth of the run: " + " ".join(f"{v:.1f}" for v in figures["timeline_per_s"]))
    for name, m in memory.items():
        print(f"  RSS {name:<7} {m['start_mb']:.0f} MiB at start, {m['first_third_mb']:.0f} -> "
              f"{m['last_third_mb']:.0f} MiB first -> last third ({m['growth_mb']:+.0f} MiB, "
              f"x{m['growth_ratio']:.2f}), {m['end_mb']:.0f} at end; CPU cores busy by third: "
              + " / ".join(f"{c:.2f}" for c in m["cpu_cores_by_third"]))
    print()
    print(f"  orders: {checks['accepted']} accepted (201), {checks['in_database']} in the database "
          f"({checks['not_acknowledged']} without a 201 that reached the client), states {checks['states']}")
    print(f"  charges: {checks['charges']}; drained in {figures['drain_s']:.1f} s (window {args.drain:g} s)")
    print(f"  create -> running p50/p99: {checks['create_to_running_ms']['p50']:.0f} / "
          f"{checks['create_to_running_ms']['p99']:.0f} ms; create -> final p50/p99: "
          f"{checks['create_to_final_ms']['p50']:.0f} / {checks['create_to_final_ms']['p99']:.0f} ms")
    print("  create -> final p99 of the orders placed in each third: "
          + " / ".join(f"{v:.0f}" for v in checks["create_to_final_p99_ms_by_third"]) + " ms")
    print(f"  driver: {checks['driver_jobs']} jobs from {checks['driver_create_calls']} create calls")
    if checks["failed"]:
        print(f"  failed orders by code: {checks['failure_codes']}")
    for line in figures["error_examples"]:
        print(f"  error: {line}")
    print()
    print(f"  errors: {errors} = {figures['failed_requests']} failed requests + {figures['logged_tracebacks']} "
          f"tracebacks logged + {checks['failed']} failed orders (target 0)   {verdict(targets['errors'])}")
    print(f"  lost orders: {checks['lost']}, unsettled charges: {checks['unsettled_charges']}, orders without a "
          f"charge: {checks['missing_charges']} (target 0)   {verdict(targets['lost'])}")
    print(f"  provisioned twice: {checks['provisioned_twice']} (target 0)   {verdict(targets['twice'])}")
    print(f"  last-third throughput: {ratio:.2f} x the first third (target >= {TARGET_THROUGHPUT_RATIO})   "
          f"{verdict(targets['throughput'])}")
    if figures["load_before"] > 1.5:
        print(f"  note: the 1-minute load average was {figures['load_before']:.1f} on {os.cpu_count()} CPUs before "
              "the bench started: other processes shared the machine")
    print(f"  1-minute load average at the start / end of the measured run: "
          f"{figures['load_during'][0]:.1f} / {figures['load_during'][1]:.1f}")
    ok = all(targets.values())
    write_results("soak", {**figures, "throughput_ratio": ratio, "p99_ratio": p99_ratio,
                           "targets": {"errors": 0, "lost": 0, "provisioned_twice": 0,
                                       "throughput_ratio": TARGET_THROUGHPUT_RATIO},
                           "pass": ok})
    return ok
