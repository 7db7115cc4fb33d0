"""The read that claiming a provisioning attempt starts with: the order row locked, with the fields of its offer and
accelerator that the job spec and the driver need, in one statement written as SQL.

Every order that is provisioned runs it once. Built by the ORM (select_for_update + select_related + only) it cost
about a millisecond of Python to compile, several times what the database spends on it; here the text is built
once from the models' metadata, and the row becomes model instances through Model.from_db with each column's
database converters (as the ORM's own iterator applies them), so the instances are what the ORM would return:
the order with only these fields loaded (the rest deferred), its offer and the offer's accelerator cached on it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model

from marketplace.db_prepared import prepared_cursor
from marketplace.models import Accelerator, Offer
from marketplace.orders.models import Order

ORDER_FIELDS = ("id", "state", "attempt", "job_ref", "key_salt", "nodes", "accelerator_count", "command", "image",
                "env", "duration_hours", "provisioning_at", "offer")
OFFER_FIELDS = ("id", "provider", "driver", "external_id", "vcpus", "ram_gb", "accelerator")
ACCELERATOR_FIELDS = ("id", "canonical_name")
PARTS: tuple[tuple[type[Model], str, tuple[str, ...]], ...] = (
    (Order, "o", ORDER_FIELDS), (Offer, "f", OFFER_FIELDS), (Accelerator, "a", ACCELERATOR_FIELDS))

Converter = Callable[[Any, Any, Any], Any]


def claim_read(order_id: int, *, using: str = "default") -> Order | None:
    """The order, locked (FOR UPDATE OF the order row only, where the database has row locks), with its offer and
    accelerator; None when there is no such order. Inside the caller's transaction."""
    connection = connections[using]
    sql, columns = _statement(connection.alias, connection.vendor)
    with (prepared_cursor() if using == DEFAULT_DB_ALIAS else connection.cursor()) as cursor:
        cursor.execute(sql, [order_id])
        row = cursor.fetchone()
    if row is None:
        return None
    instances = []
    start = 0
    for (model, _, _), (attnames, converters) in zip(PARTS, columns, strict=True):
        values = list(row[start:start + len(attnames)])
        start += len(attnames)
        for index, (expression, chain) in converters.items():
            for convert in chain:
                values[index] = convert(values[index], expression, connection)
        instances.append(model.from_db(using, attnames, values))
    order, offer, accelerator = instances
    offer.accelerator = accelerator
    order.offer = offer
    return order


@cache
def _statement(alias: str, vendor: str) -> tuple[str, list[tuple[list[str], dict[int, tuple[Any, list[Converter]]]]]]:
    connection = connections[alias]
    select: list[str] = []
    columns = []
    for model, table_alias, names in PARTS:
        attnames: list[str] = []
        converters: dict[int, tuple[Any, list[Converter]]] = {}
        wanted = {model._meta.get_field(name) for name in names}
        # In the model's field order: Model.from_db reads the values in that order.
        for field in (f for f in model._meta.concrete_fields if f in wanted):
            expression = field.get_col(table_alias)
            chain = connection.ops.get_db_converters(expression) + expression.get_db_converters(connection)
            if chain:
                converters[len(attnames)] = (expression, chain)
            attnames.append(field.attname)
            select.append(f'{table_alias}."{field.column}"')
        columns.append((attnames, converters))
    order_table, offer_table, accelerator_table = (model._meta.db_table for model, _, _ in PARTS)
    offer_column = Order._meta.get_field("offer").column
    accelerator_column = Offer._meta.get_field("accelerator").column
    sql = (f'SELECT {", ".join(select)} FROM "{order_table}" o '
           f'INNER JOIN "{offer_table}" f ON f."id" = o."{offer_column}" '
           f'INNER JOIN "{accelerator_table}" a ON a."id" = f."{accelerator_column}" WHERE o."id" = %s')
    if connection.features.has_select_for_update_of:
        sql += " FOR UPDATE OF o"
    elif connection.features.has_select_for_update:
        sql += " FOR UPDATE"
    return sql, columns
