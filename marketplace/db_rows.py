"""Model instances from a hand-written SQL statement's row, built as the ORM builds them.

For the few hot statements written as SQL (the token lookup, the provisioning claim): each model's columns are
selected in the model's field order (Model.from_db reads values in that order), each value goes through the
converters the ORM applies to its column (JSON, Decimal, datetimes on SQLite, ...), and `Model.from_db` makes the
instance, with the fields not read left deferred.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import Model


@dataclass(frozen=True)
class ModelColumns:
    model: type[Model]
    attnames: list[str]
    select: list[str]  # "alias"."column", in the model's field order
    converters: list[tuple[int, list, Any]]  # (position among these columns, converters, the column expression)

    def build(self, values: Iterable[Any], connection) -> Model:
        values = list(values)
        for position, funcs, column in self.converters:
            for func in funcs:
                values[position] = func(values[position], column, connection)
        return self.model.from_db(connection.alias, self.attnames, values)


def model_columns(model: type[Model], table_alias: str, names: Iterable[str] | None, connection) -> ModelColumns:
    """The columns of `names` (field names or attnames; None: every concrete field) of `model`, as selected from
    the table aliased `table_alias` on `connection`."""
    wanted = None if names is None else {model._meta.get_field(name) for name in names}
    fields = [f for f in model._meta.concrete_fields if wanted is None or f in wanted]
    converters = []
    for position, field in enumerate(fields):
        column = field.get_col(table_alias)
        funcs = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
        if funcs:
            converters.append((position, funcs, column))
    return ModelColumns(model, [f.attname for f in fields], [f'{table_alias}."{f.column}"' for f in fields],
                        converters)


def build_row(parts: list[ModelColumns], row: Iterable[Any], connection) -> list[Model]:
    """One instance per part, from consecutive slices of the row."""
    row = list(row)
    instances, start = [], 0
    for part in parts:
        instances.append(part.build(row[start:start + len(part.attnames)], connection))
        start += len(part.attnames)
    return instances


def row_lock_clause(alias: str, connection, *, no_key: bool = False) -> str:
    """FOR UPDATE OF the aliased table's rows only, where the database has row locks of that kind; FOR UPDATE
    where it has plain ones; nothing on SQLite (its writers are serialised anyway). `no_key`: FOR NO KEY UPDATE
    where the database has it (the row's key is not changed: a foreign key check on the row, which takes FOR KEY
    SHARE, does not wait for this lock)."""
    strength = "NO KEY UPDATE" if no_key and connection.features.has_select_for_no_key_update else "UPDATE"
    if connection.features.has_select_for_update_of:
        return f" FOR {strength} OF {alias}"
    if connection.features.has_select_for_update:
        return " FOR UPDATE"
    return ""
