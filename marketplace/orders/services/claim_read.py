"""The read that claiming a provisioning attempt starts with: the order row locked, with the fields of its offer and
accelerator that the job spec and the driver need, in one statement written as SQL.

Every order that is provisioned runs it once. Built by the ORM (select_for_update + select_related + only) it cost
about a millisecond of Python to compile, several times what the database spends on it; here the text is built
once from the models' metadata and the row becomes model instances as the ORM would return them
(marketplace/db_rows.py): the order with only these fields loaded (the rest deferred), its offer and the offer's
accelerator cached on it. On PostgreSQL it runs prepared (marketplace/db_prepared.py). The one-statement claim
(provision_statements.py) selects the same columns from the row its UPDATE returns and builds the same instances.
"""

from __future__ import annotations

from functools import cache

from django.db import connection

from marketplace.db_prepared import prepared_cursor
from marketplace.db_rows import ModelColumns, build_row, model_columns, row_lock_clause
from marketplace.models import Accelerator, Offer
from marketplace.orders.models import Order

ORDER_FIELDS = ("id", "state", "attempt", "job_ref", "key_salt", "nodes", "accelerator_count", "command", "image",
                "env", "duration_hours", "provisioning_at", "offer")
OFFER_FIELDS = ("id", "provider", "driver", "external_id", "vcpus", "ram_gb", "accelerator")
ACCELERATOR_FIELDS = ("id", "canonical_name")


def claim_read(order_id: int) -> Order | None:
    """The order, locked (FOR UPDATE OF the order row only, where the database has row locks), with its offer and
    accelerator; None when there is no such order. Inside the caller's transaction."""
    sql = _statement(connection.vendor)
    with prepared_cursor() as cursor:
        cursor.execute(sql, [order_id])
        row = cursor.fetchone()
    return None if row is None else claimed_order(row)


def claimed_order(row) -> Order:
    """The order of a row of `claim_select`, its offer and the offer's accelerator cached on it."""
    order, offer, accelerator = build_row(claim_columns(), row, connection)
    offer.accelerator = accelerator
    order.offer = offer
    return order


def claim_select(source: str) -> str:
    """SELECT <the claim's columns> FROM <source> o joined with its offer (f) and the offer's accelerator (a):
    `source` is the order table, or a WITH query returning (at least) ORDER_FIELDS' columns."""
    select = ", ".join(column for part in claim_columns() for column in part.select)
    offer, accelerator = Order._meta.get_field("offer").column, Offer._meta.get_field("accelerator").column
    return (f'SELECT {select} FROM {source} o '
            f'INNER JOIN "{Offer._meta.db_table}" f ON f."id" = o."{offer}" '
            f'INNER JOIN "{Accelerator._meta.db_table}" a ON a."id" = f."{accelerator}"')


@cache
def claim_columns() -> list[ModelColumns]:
    return [model_columns(Order, "o", ORDER_FIELDS, connection), model_columns(Offer, "f", OFFER_FIELDS, connection),
            model_columns(Accelerator, "a", ACCELERATOR_FIELDS, connection)]


@cache
def _statement(vendor: str) -> str:
    table = f'"{Order._meta.db_table}"'
    sql = f'{claim_select(table)} WHERE o."id" = %s'
    sql += row_lock_clause("o", connection)
    return sql
