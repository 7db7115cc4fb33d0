"""The recommendation page's logic: a live preview through the engine, chart points, one-click relaxations.

The preview runs the same engine on the same snapshot as quote_create but stores nothing: the form re-runs it
on every change, and a quote (with locked prices) is made only when the customer picks an option to order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from typing import Any

from django.utils import timezone

from broker.engine import parse_request, recommend
from marketplace.models import Offer
from marketplace.portal.recommend_form import RecommendForm
from marketplace.selectors.snapshot import current_snapshot

CENT = Decimal("0.01")


def recommend_preview(document: dict[str, Any]) -> dict[str, Any]:
    """The engine's answer for `document` (raises RequestError with field paths when it is invalid)."""
    now = timezone.now()
    request = parse_request(document, now=now)
    return recommend(current_snapshot(), request, now=now).to_json()


# ------------------------------------------------------------------------------------------- chart
def chart_data(answer: dict[str, Any]) -> dict[str, Any]:
    """Points of the scatter: total cost (y) against runtime (x), Pareto flag and carbon per candidate.

    A serving request runs every candidate for the hours asked, so runtime is the same for all; there the x axis
    is the throughput each configuration delivers, which is what tells serving options apart.
    """
    recs = answer.get("recommendations", [])
    by_throughput = answer.get("kind") == "llm_inference" and recs and all(
        r.get("est_tokens_per_second") is not None for r in recs)
    points = []
    for r in recs:
        if by_throughput:
            x, x_text = r["est_tokens_per_second"], f"{r['est_tokens_per_second']:,.0f} tokens/s"
        else:
            x, x_text = r["est_hours"], f"{r['est_hours']:,.1f} h"
        points.append({
            "rank": r["rank"], "x": x, "y": float(r["est_total_usd"]), "x_text": x_text,
            "carbon": r.get("est_kg_co2e"), "pareto": bool(r.get("pareto")),
            "label": f"{r['nodes']}× {r['count']}× {short_name(r['accelerator'])} · {r['provider']}",
        })
    return {
        "x_label": "Throughput of the configuration (tokens/s)" if by_throughput else "Estimated runtime (hours)",
        "points": points,
    }


def short_name(accelerator: str) -> str:
    return accelerator.removeprefix("NVIDIA ").removeprefix("AMD Instinct ").removeprefix("AMD ")


# -------------------------------------------------------------------------------------- relaxations
@dataclass(frozen=True, slots=True)
class Patch:
    """Set form field `field` to `value` (a string, as the browser will submit it)."""

    field: str
    value: str
    text: str


_AMOUNT = re.compile(r"\$([\d,]+(?:\.\d+)?)")
_NUMBER = re.compile(r"(\d+(?:\.\d+)?)")


def _amount(text: str) -> Decimal | None:
    match = _AMOUNT.search(text)
    try:
        return Decimal(match.group(1).replace(",", "")) if match else None
    except InvalidOperation:
        return None


def _first_number(text: str) -> str | None:
    match = _NUMBER.search(text)
    return match.group(1) if match else None


def _append(current: str, item: str) -> str:
    items = [p.strip() for p in (current or "").split(",") if p.strip()]
    return ", ".join([*items, item]) if item not in items else ", ".join(items)


def relaxation_patch(relaxation: dict[str, Any], form: RecommendForm, answer: dict[str, Any]) -> Patch | None:
    """How to apply one suggested relaxation to the form, or None when no field of this form controls it.

    Values are taken so the suggested offer really gets in: an exact figure when the answer or the database
    has one, else the engine's rounded figure moved one cent (or 0.1 h) in the loosening direction.
    """
    code, change = relaxation["constraint"], relaxation["change"]
    fields = form.fields
    data = form.cleaned_data if hasattr(form, "cleaned_data") else {}
    offer_id = relaxation.get("cheapest_offer_id")
    if code == "max_price_per_hour" and code in fields:
        exact = next((Decimal(n["price_per_hour"]) for n in answer.get("excluded", {}).get("near_misses", [])
                      if n["offer_id"] == offer_id and n["reason"] == code), None)
        value = exact if exact is not None else _ceil_cent(_amount(change))
        return None if value is None else Patch(code, _plain(value), f"max. price per hour {_usd(value)}")
    if code == "max_total_usd" and code in fields:
        value = _ceil_cent(_amount(change))
        return None if value is None else Patch(code, _plain(value), f"budget {_usd(value)}")
    if code == "min_provider_reliability" and code in fields:
        if "without a reliability record" in change:
            return Patch(code, "", "no minimum reliability")
        score = (Offer.objects.filter(pk=offer_id).values_list("provider__reliability_score", flat=True).first()
                 if offer_id else None)
        if score is None:
            return None
        return Patch(code, _plain(score), f"min. reliability {_plain(score)}")
    if code in ("region", "country"):
        name = f"{'regions' if code == 'region' else 'countries'}_allowed"
        target = change.split()[-1]
        if name in fields and data.get(name):
            return Patch(name, _append(data[name], target), f"also allow {code} {target}")
        return None
    if code == "accelerator" and "accelerator" in fields and data.get("accelerator"):
        target = change.removeprefix("also allow ").strip()
        return Patch("accelerator", _append(data["accelerator"], target), f"also allow {target}")
    if code == "accelerator_count" and "count" in fields and (n := _first_number(change)):
        return Patch("count", n, f"{n} accelerators per node")
    if code == "accelerator_memory" and "min_memory_gb" in fields and data.get("min_memory_gb") is not None:
        n = _first_number(change)
        return None if n is None else Patch("min_memory_gb", n, f"accelerators with {n} GB")
    if code == "interconnect" and "interconnect" in fields and data.get("interconnect"):
        return Patch("interconnect", "", "any interconnect")
    if code == "deadline" and "finish_within_hours" in fields and (n := _first_number(change)):
        hours = Decimal(n) + Decimal("0.1")
        return Patch("finish_within_hours", _plain(hours), f"finish within {_plain(hours)} h")
    if code == "provider_min_rental" and "duration_hours" in fields and (n := _first_number(change)):
        return Patch("duration_hours", n, f"rent for {n} h")
    return None


def _ceil_cent(value: Decimal | None) -> Decimal | None:
    """The engine rounds money to the nearest cent in its texts; one cent more is never below the true figure."""
    return None if value is None else (value + CENT).quantize(CENT, rounding=ROUND_CEILING)


def _plain(value: Any) -> str:
    text = format(Decimal(str(value)), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _usd(value: Decimal) -> str:
    return f"${value.quantize(CENT, rounding=ROUND_CEILING):,}"


# ------------------------------------------------------------------------------------- presentation
def histogram(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """Excluded-offer reasons, most common first, with a bar width relative to the most common one."""
    reasons = sorted(answer.get("excluded", {}).get("by_reason", []), key=lambda r: -r["count"])
    top = max((r["count"] for r in reasons), default=0) or 1
    return [{**r, "width": round(100 * r["count"] / top)} for r in reasons]
