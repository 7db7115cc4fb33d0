"""The read that claiming a provisioning attempt starts with: the order row locked, with the fields of its offer and
accelerator that the job spec and the driver need, in one statement written as SQL.

Every order that is provisioned runs it once. Built by the ORM (select_for_update + select_related + only) it cost
about a millisecond of Python to compile, several times what the database spends on it; here the text is built
once from the models' metadata and the row becomes model instances as the ORM would return them
(marketplace/db_rows.py): the order with only these fields loaded (the rest deferred), its offer and the offer's
accelerator cached on it. On PostgreSQL it runs prepared (marketplace/db_prepared.py).
"""

from __future__ import annotations

from functools import cache

from django.db import connection

from marketplace.db_prepared import prepared_cursor
from marketplace.db_rows import ModelColumns, build_row, model_columns
from marketplace.models import Accelerator, Offer
from marketplace.orders.models import Order

ORDER_FIELDS = ("id", "state", "attempt", "job_ref", "key_salt", "nodes", "accelerator_count", "command", "image",
                "env", "duration_hours", "provisioning_at", "offer")
OFFER_FIELDS = ("id", "provider", "driver", "external_id", "vcpus", "ram_gb", "accelerator")
ACCELERATOR_FIELDS = ("id", "canonical_name")


def claim_read(order_id: int) -> Order | None:
    """The order, locked (FOR UPDATE OF the order row only, where the database has row locks), with its offer and
    accelerator; None when there is no such order. Inside the caller's transaction."""
    sql, parts = _statement(connection.vendor)
    with prepared_cursor() as cursor:
        cursor.execute(sql, [order_id])
        row = cursor.fetchone()
    if row is None:
        return None
    order, offer, accelerator = build_row(parts, row, connection)
    offer.accelerator = accelerator
    order.offer = offer
    return order


@cache
def _statement(vendor: str) -> tuple[str, list[ModelColumns]]:
    parts = [model_columns(Order, "o", ORDER_FIELDS, connection), model_columns(Offer, "f", OFFER_FIELDS, connection),
             model_columns(Accelerator, "a", ACCELERATOR_FIELDS, connection)]
    select = ", ".join(column for part in parts for column in part.select)
    sql = (f'SELECT {select} FROM "{Order._meta.db_table}" o '
           f'INNER JOIN "{Offer._meta.db_table}" f ON f."id" = o."{Order._meta.get_field("offer").column}" '
           f'INNER JOIN "{Accelerator._meta.db_table}" a ON a."id" = f."{Offer._meta.get_field("accelerator").column}" '
           f'WHERE o."id" = %s')
    if connection.features.has_select_for_update_of:
        sql += " FOR UPDATE OF o"
    elif connection.features.has_select_for_update:
        sql += " FOR UPDATE"
    return sql, parts
