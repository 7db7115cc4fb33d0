"""Invoices, derived on demand from the charge, refund, top-up and ledger rows (never stored, so they cannot
disagree with the ledger). Per order and per calendar month (UTC); rendered as JSON by the API, or as CSV.

Numbers: `INV-O<order id>` for an order, `INV-M<YYYYMM>-U<user id>` for a month.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal

from marketplace.billing.conf import billing_settings
from marketplace.billing.gateway import load_config
from marketplace.billing.models import JournalLine, OrderCharge, OrderRefund, PaymentMethodKind, TopUp
from marketplace.billing.money import ZERO
from marketplace.billing.services.ledger import customer_credit_account, sum_lines
from marketplace.errors import NotFoundError, ValidationFailed

FINAL = (OrderCharge.Status.SETTLED, OrderCharge.Status.VOIDED)
DRAFT = (OrderCharge.Status.AUTHORIZING, OrderCharge.Status.AUTHORIZED, OrderCharge.Status.SETTLING,
         OrderCharge.Status.VOIDING)


def _m(amount: Decimal) -> str:
    return f"{amount:.2f}"


def _line(kind: str, description: str, amount: Decimal, *, order_id: int | None = None, quantity: Decimal | None = None,
          unit: str = "", unit_price: Decimal | None = None) -> dict:
    return {"kind": kind, "description": description, "order_id": order_id,
            "quantity": None if quantity is None else f"{quantity:.4f}", "unit": unit,
            "unit_price": None if unit_price is None else f"{unit_price:.4f}", "amount": _m(amount)}


def _charge_for(user, order_id: int) -> OrderCharge:
    charge = OrderCharge.objects.select_related("provider", "customer").filter(order_id=order_id).first()
    if charge is None or not (charge.customer_id == user.pk or getattr(user, "is_operator", False)):
        raise NotFoundError(f"No invoice for order {order_id}.")
    return charge


def _usage_line(charge: OrderCharge, amount: Decimal) -> dict:
    return _line("usage", charge.description or f"Order {charge.order_id}", amount, order_id=charge.order_id,
                 quantity=charge.usage_quantity, unit=charge.unit_label, unit_price=charge.unit_price)


def order_invoice(user, order_id: int) -> dict:
    charge = _charge_for(user, order_id)
    lines = [_usage_line(charge, charge.metered_amount)]
    if charge.uncovered_amount:
        why = "prepaid credit ran out" if charge.method == PaymentMethodKind.CREDIT else "beyond the card authorization"
        lines.append(_line("not_charged", f"Usage not charged ({why})", -charge.uncovered_amount,
                           order_id=order_id))
    if charge.written_off_amount:
        lines.append(_line("not_charged", "Usage not charged (order voided or below the minimum charge)",
                           -charge.written_off_amount, order_id=order_id))
    refunds = list(charge.refunds.filter(status=OrderRefund.Status.SUCCEEDED))
    for refund in refunds:
        lines.append(_line("refund", f"Refund {refund.seq} ({refund.reason})", -refund.amount, order_id=order_id))
    charged = charge.usage_amount - charge.written_off_amount
    refunded = sum((r.amount for r in refunds), ZERO)
    status = "final" if charge.status in FINAL else "draft" if charge.status in DRAFT else charge.status
    return {
        "number": f"INV-O{order_id}", "kind": "order", "status": status, "mode": load_config().mode,
        "order_id": order_id, "customer": charge.customer.get_username(), "provider": charge.provider.name,
        "currency": charge.currency, "payment_method": charge.method, "charge_status": charge.status,
        "issued_at": charge.settled_at.isoformat() if charge.settled_at else None,
        "lines": lines,
        "fees": {"platform_fee_included": _m(charge.fee_amount),
                 "platform_fee_percent": str(billing_settings().platform_fee_percent)},
        "totals": {"usage": _m(charge.metered_amount), "not_charged": _m(charge.metered_amount - charged),
                   "refunds": _m(refunded), "total": _m(charged - refunded)},
        "payments": _payments(charge, charged, refunded),
    }


def _payments(charge: OrderCharge, charged: Decimal, refunded: Decimal) -> list[dict]:
    if charge.method == PaymentMethodKind.CREDIT:
        return [{"method": "credit", "amount": _m(charged - refunded), "reference": "prepaid credit"}]
    return [{"method": "card", "amount": _m(charge.captured_amount - refunded),
             "reference": charge.payment_intent_id}]


def _month_bounds(month: str) -> tuple[datetime, datetime]:
    try:
        start = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
    except ValueError:
        raise ValidationFailed("Invalid month.", fields={"month": ["Use YYYY-MM."]}) from None
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start, end


def monthly_invoice(user, month: str, *, now: datetime | None = None) -> dict:
    """Orders settled in the month, refunds made in it, credit bought in it, and the credit balance at its end."""
    start, end = _month_bounds(month)
    now = now or datetime.now(UTC)
    lines: list[dict] = []
    card = credit = ZERO
    for charge in OrderCharge.objects.filter(customer=user, status__in=FINAL, settled_at__gte=start,
                                             settled_at__lt=end).select_related("provider").order_by("settled_at"):
        amount = charge.usage_amount - charge.written_off_amount
        lines.append(_usage_line(charge, amount))
        if charge.method == PaymentMethodKind.CARD:
            card += amount
        else:
            credit += amount
    refunds = ZERO
    for refund in OrderRefund.objects.filter(charge__customer=user, status=OrderRefund.Status.SUCCEEDED,
                                             succeeded_at__gte=start, succeeded_at__lt=end) \
            .select_related("charge").order_by("succeeded_at"):
        lines.append(_line("refund", f"Refund {refund.seq} of order {refund.charge.order_id} ({refund.reason})",
                           -refund.amount, order_id=refund.charge.order_id))
        refunds += refund.amount
    purchases = []
    for topup in TopUp.objects.filter(customer=user, status=TopUp.Status.SUCCEEDED, credited_at__gte=start,
                                      credited_at__lt=end).order_by("credited_at"):
        purchases.append(_line("credit_purchase", f"Prepaid credit top-up {topup.pk}", topup.credited_amount))
    bought = sum((Decimal(p["amount"]) for p in purchases), ZERO)
    account = customer_credit_account(user)
    raw = sum_lines(JournalLine.objects.filter(account=account, entry__created_at__lt=end))
    charges = card + credit
    return {
        "number": f"INV-M{start:%Y%m}-U{user.pk}", "kind": "monthly", "month": month,
        "status": "final" if end <= now else "open", "mode": load_config().mode,
        "customer": user.get_username(), "currency": "usd",
        "period": {"start": start.isoformat(), "end": end.isoformat()},
        "lines": lines, "credits": purchases,
        "totals": {"charges": _m(charges), "refunds": _m(refunds), "total": _m(charges - refunds),
                   "paid_by_card": _m(card), "paid_from_credit": _m(credit), "credit_purchased": _m(bought),
                   "credit_balance_at_end": _m(-raw)},
    }


def invoice_csv(invoice: dict) -> str:
    """One row per line (usage, not charged, refunds, credit purchases), then the totals."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["invoice", "kind", "description", "order_id", "quantity", "unit", "unit_price", "amount",
                     "currency"])
    for line in invoice["lines"] + invoice.get("credits", []):
        writer.writerow([invoice["number"], line["kind"], line["description"], line["order_id"] or "",
                         line["quantity"] or "", line["unit"], line["unit_price"] or "", line["amount"],
                         invoice["currency"]])
    for name, value in invoice["totals"].items():
        writer.writerow([invoice["number"], "total", name, "", "", "", "", value, invoice["currency"]])
    return out.getvalue()


def invoice_index(user) -> dict:
    """The invoices a customer can open: one per order with a charge, one per month with activity."""
    charges = OrderCharge.objects.filter(customer=user).order_by("-order_id").values_list("order_id", "created_at")
    months = {f"{created:%Y-%m}" for _, created in charges}
    months |= {f"{t:%Y-%m}" for t in TopUp.objects.filter(customer=user, credited_at__isnull=False)
               .values_list("credited_at", flat=True)}
    return {"orders": [{"order_id": oid, "number": f"INV-O{oid}"} for oid, _ in charges],
            "months": [{"month": m, "number": f"INV-M{m.replace('-', '')}-U{user.pk}"} for m in sorted(months)]}
