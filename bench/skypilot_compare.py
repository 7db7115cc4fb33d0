"""The same instance requests through SkyPilot's own optimizer (in its own venv, reading the shared catalogs
offline) and through our engine, timed per request. Used by bench/engine_bench.py."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from broker.engine import OfferRow, OfferSnapshot, parse_request, recommend
from broker.engine.specs import default_specs

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BROKER_SHARED_DATA", ROOT.parent / "shared" / "data"))
CATALOG_DIR = SHARED / "skypilot-catalog"
SKY_VENV = ROOT / "var" / "skypilot-venv"
TARGET_SKYPILOT_SPEEDUP = 50.0
NOW = datetime(2030, 1, 1, tzinfo=UTC)
SKY_CLOUDS = ("lambda", "nebius", "primeintellect", "seeweb", "hyperbolic", "mithril")

SKY_SCRIPT = r"""
import json, os, sys, time
runtime, catalog, reps = sys.argv[1], sys.argv[2], int(sys.argv[3])
clouds = sys.argv[4].split(",")
os.environ["SKY_RUNTIME_DIR"] = runtime
os.environ["SKYPILOT_DISABLE_USAGE_COLLECTION"] = "1"
base = os.path.join(runtime, ".sky", "catalogs", "v8")
os.makedirs(base, exist_ok=True)
for c in clouds + ["common"]:
    if os.path.isdir(os.path.join(catalog, c)) and not os.path.exists(os.path.join(base, c)):
        os.symlink(os.path.join(catalog, c), os.path.join(base, c))
import sky
from sky import check as sky_check, optimizer
from sky.utils import common, registry
enabled = [registry.CLOUD_REGISTRY.from_str(c) for c in clouds]
sky_check.get_cached_enabled_clouds_or_refresh = lambda *a, **k: list(enabled)
optimizer.sky_check.get_cached_enabled_clouds_or_refresh = sky_check.get_cached_enabled_clouds_or_refresh
out = {}
for name, count in json.loads(sys.argv[5]):
    times, best = [], None
    for _ in range(reps + 1):
        with sky.Dag() as dag:
            sky.Task(run="true").set_resources(sky.Resources(accelerators={name: count}))
        t = time.perf_counter()
        optimizer.Optimizer.optimize(dag, minimize=common.OptimizeTarget.COST, quiet=True)
        times.append(time.perf_counter() - t)
        r = dag.tasks[0].best_resources
        best = [str(r.cloud), r.instance_type, r.region, r.get_cost(3600)]
    out[f"{name}x{count}"] = {"times": times[1:], "first": times[0], "best": best}
print("RESULT " + json.dumps(out))
"""
SKY_REQUESTS = (("H100", 8), ("A100-80GB", 8), ("L40S", 1))


def skypilot_comparison(shapes_available: bool) -> tuple[bool | None, list[str]]:
    lines = []
    if not shapes_available or not CATALOG_DIR.is_dir():
        return None, ["SkyPilot comparison skipped: the shared catalogs are not available"]
    python = SKY_VENV / "bin" / "python"
    if not python.exists():
        lines.append(f"creating {SKY_VENV} and installing skypilot==0.14.1 ...")
        try:
            subprocess.run([sys.executable, "-m", "venv", str(SKY_VENV)], check=True, capture_output=True)
            subprocess.run(
                [str(python), "-m", "pip", "install", "-q", "skypilot==0.14.1"],
                check=True,
                capture_output=True,
                timeout=1200,
            )
        except (subprocess.SubprocessError, OSError) as exc:
            err = getattr(exc, "stderr", b"") or b""
            return None, [*lines, f"SkyPilot install failed, comparison skipped: {exc} {err.decode()[-400:]}"]
    runtime = ROOT / "var" / "skypilot-runtime"
    runtime.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [
            str(python),
            "-c",
            SKY_SCRIPT,
            str(runtime),
            str(CATALOG_DIR),
            "5",
            ",".join(SKY_CLOUDS),
            json.dumps(SKY_REQUESTS),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    result = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if proc.returncode != 0 or result is None:
        return None, [*lines, f"SkyPilot optimizer run failed, comparison skipped: {proc.stderr[-600:]}"]
    sky = json.loads(result[len("RESULT ") :])
    from broker.catalogs.skypilot import read_catalog

    offers, _ = read_catalog(CATALOG_DIR)
    rows = [_catalog_row(i, o) for i, o in enumerate(offers, start=1) if o.cloud in SKY_CLOUDS]
    snapshot = OfferSnapshot.from_rows(rows)
    ok = True
    lines.append(f"same instance requests on the {len(rows)} offers SkyPilot can read ({', '.join(SKY_CLOUDS)}):")
    for name, count in SKY_REQUESTS:
        request = parse_request(
            {"resources": {"accelerator": name, "count": count}, "duration_hours": 1, "objective": "cost"}, now=NOW
        )
        recommend(snapshot, request)
        ours = []
        for _ in range(50):
            t = time.perf_counter()
            answer = recommend(snapshot, request)
            ours.append(time.perf_counter() - t)
        top = answer.recommendations[0]
        theirs = sky[f"{name}x{count}"]
        ratio = statistics.median(theirs["times"]) / statistics.median(ours)
        ok &= ratio >= TARGET_SKYPILOT_SPEEDUP
        lines.append(
            f"  {name}x{count}: SkyPilot {statistics.median(theirs['times']) * 1000:8.1f} ms "
            f"(first call {theirs['first'] * 1000:.0f} ms) -> {theirs['best'][0]} {theirs['best'][1]} "
            f"${theirs['best'][3]:.2f}/h | ours {statistics.median(ours) * 1000:6.2f} ms -> {top.provider} "
            f"${top.node_price_per_hour}/h | {ratio:,.0f}x faster "
            f"[{'PASS' if ratio >= TARGET_SKYPILOT_SPEEDUP else 'FAIL'} >= {TARGET_SKYPILOT_SPEEDUP:g}x]"
            f"{'' if abs(float(top.node_price_per_hour) - theirs['best'][3]) < 0.005 else '  (answers differ)'}"
        )
    return ok, lines


def _catalog_row(i: int, o) -> OfferRow:
    spec = default_specs().spec(o.accelerator)
    q = Decimal("0.0001")
    return OfferRow(
        offer_id=i,
        provider_id=hash(o.cloud) % 10_000,
        provider_name=o.cloud,
        provider_reliability=None,
        provider_min_rental_hours=Decimal(0),
        provider_allowed_kinds=(),
        provider_interruptible_allowed=True,
        accelerator=o.accelerator,
        count=o.count,
        memory_gb=o.memory_gb,
        vcpus=o.vcpus,
        ram_gb=o.ram_gb,
        disk_gb=o.disk_gb,
        interconnect=o.interconnect,
        inter_node="none",
        region_key=o.region_key,
        country="",
        grid_ci_gco2_per_kwh=None,
        pue=None,
        price_per_hour=o.price.quantize(q),
        interruptible_price_per_hour=None if o.interruptible_price is None else o.interruptible_price.quantize(q),
        nodes_available=1,
        min_rental_hours=Decimal(0),
        stack_family=spec.stack_family if spec else "other",
    )


