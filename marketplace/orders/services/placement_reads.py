"""What placing an order reads before its transaction, in one statement: the order an Idempotency-Key already
made (a replay), the quote, the customer's billing profile and prepaid-credit account (whether it is paid
from credit: billing_credit_ready) and, on PostgreSQL, the offer of the quote's first alternative with its
provider, accelerator and region (what the one-statement placement needs of it: placement_statement.py).

Through the ORM these were four queries, each compiled anew (about a quarter of an order request's CPU); here
one SELECT of LEFT JOINs from a single row, its text built once from the models (marketplace/db_rows.py makes
the instances as the ORM would), prepared on PostgreSQL. Each part is None when its row does not exist; the
caller then takes the usual way for that part (which raises the 404, or creates the billing rows).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.db import connection

from marketplace.billing.models import CustomerBilling, LedgerAccount
from marketplace.billing.services.ledger import customer_credit_account_key
from marketplace.db_prepared import prepared_cursor
from marketplace.db_rows import ModelColumns, model_columns
from marketplace.models import Offer, Quote, User
from marketplace.orders.models import Order
from marketplace.orders.services.reservations import offer_from_row, placement_offer_columns


@dataclass(frozen=True)
class PlacementReads:
    replayed: Order | None  # id and request_hash only
    quote: Quote | None
    profile: CustomerBilling | None
    credit_account: LedgerAccount | None
    offer: Offer | None = None  # the first alternative's, unlocked (PostgreSQL only)


def placement_reads(user: User, idempotency_key: str, quote_id: Any) -> PlacementReads:
    """The rows for `user` (one statement). `quote_id` None or not a UUID reads no quote."""
    quote_key = _as_uuid(quote_id)
    account = customer_credit_account_key(user)
    sql, parts, offer_parts = _statement(connection.vendor)
    params = [user.pk, idempotency_key,
              None if quote_key is None else Quote._meta.pk.get_db_prep_value(quote_key, connection), user.pk,
              user.pk, account["kind"], account["owner_key"], account["currency"]]
    with prepared_cursor() as cursor:
        cursor.execute(sql, params)
        row = list(cursor.fetchone())
    found, start = [], 0
    for part in parts:
        values = row[start:start + len(part.attnames)]
        start += len(part.attnames)
        found.append(None if values[0] is None else part.build(values, connection))
    offer = offer_from_row(offer_parts, row[start:]) if offer_parts and row[start] is not None else None
    return PlacementReads(*found, offer=offer)


def _as_uuid(value: Any) -> uuid.UUID | None:
    if value is None:
        return None
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError):
        return None


@cache
def _statement(vendor: str) -> tuple[str, list[ModelColumns], list[ModelColumns]]:
    parts = [model_columns(Order, "r", ("id", "request_hash"), connection), model_columns(Quote, "q", None, connection),
             model_columns(CustomerBilling, "b", None, connection), model_columns(LedgerAccount, "a", None, connection)]
    offer_parts, offer_joins = placement_offer_columns("x", "LEFT JOIN") if vendor == "postgresql" else ([], [])
    select = ", ".join(column for part in [*parts, *offer_parts] for column in part.select)
    order, quote = Order._meta, Quote._meta
    profile, account = CustomerBilling._meta, LedgerAccount._meta
    sql = (f'SELECT {select} FROM (SELECT 1 AS one) k '
           f'LEFT JOIN "{order.db_table}" r ON r."{order.get_field("customer").column}" = %s '
           f'AND r."idempotency_key" = %s '
           f'LEFT JOIN "{quote.db_table}" q ON q."id" = %s AND q."{quote.get_field("user").column}" = %s '
           f'LEFT JOIN "{profile.db_table}" b ON b."{profile.get_field("user").column}" = %s '
           f'LEFT JOIN "{account.db_table}" a ON a."kind" = %s AND a."owner_key" = %s AND a."currency" = %s')
    if offer_joins:  # the first alternative's offer id, when it is a plain integer (the quote is the engine's JSON)
        first = f"""(q."{quote.get_field('alternatives').column}" -> 0 ->> 'offer_id')"""
        sql += (f' LEFT JOIN "{Offer._meta.db_table}" xf ON xf."id" = '
                f"(CASE WHEN {first} ~ '^[0-9]{{1,18}}$' THEN {first}::bigint END) {' '.join(offer_joins)}")
    return sql, parts, offer_parts
