"""INSERT ... SELECT statements built from the models, for the few hot writes written as SQL on PostgreSQL.

A statement that writes several rows in one round trip (a data-modifying WITH query: an order, then rows that
refer to it by the id its INSERT returned) cannot go through the ORM's save(). `insert_select` builds, once per
model, such an INSERT: every column the ORM's own INSERT would write (concrete, not generated, not the auto
primary key), each either taken from the row a JSON parameter describes or an SQL expression the caller names
(`o."id"`: the id returned by an earlier part of the statement).

A row travels as one JSON parameter, `jsonb_populate_record(NULL::<table>, <json>)` turning it into the table's
column types (with their length and precision checks), rather than as one parameter per column: a placement writes
some ninety values, and psycopg converts (and does not cache) the text of a query with more than 50 parameters,
and adapts each parameter, on every call. `params(obj)` builds the JSON from an unsaved instance with the values
save() would write (Field.pre_save for auto_now/auto_now_add, then get_prep_value): decimals as exact strings,
datetimes in ISO 8601 with their offset and microseconds, JSON fields as JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property, partial
from operator import attrgetter
from typing import Any

import orjson
from django.db.models import Field, Model


@dataclass(frozen=True)
class InsertSelect:
    model: type[Model]
    fields: list[Field]  # the columns the JSON row gives
    columns: str  # "a", "b", ... (every column written)
    values: str  # the SELECT list, one entry per column: r."a" or the caller's expression

    def sql(self, source: str = "", *, many: bool = False, where: str = "", returning: str = '"id"') -> str:
        """INSERT INTO <table> (<columns>) SELECT <values> FROM <the JSON row(s)> r [CROSS JOIN <source>]
        [WHERE <where>] RETURNING <returning>. One parameter: params(obj), or with `many` params_many(objs) (rows
        inserted in the list's order)."""
        table = self.model._meta.db_table
        rows = (f'jsonb_populate_recordset(NULL::"{table}", CAST(%s AS jsonb)) r' if many
                else f'jsonb_populate_record(NULL::"{table}", CAST(%s AS jsonb)) r')
        join = f" CROSS JOIN {source}" if source else ""
        condition = f" WHERE {where}" if where else ""
        return (f'INSERT INTO "{table}" ({self.columns}) SELECT {self.values} FROM {rows}{join}{condition} '
                f"RETURNING {returning}")

    def params(self, obj: Model) -> list[str]:
        return [orjson.dumps(self.row(obj)).decode()]

    def params_many(self, objs: Iterable[Model]) -> list[str]:
        return [orjson.dumps([self.row(obj) for obj in objs]).decode()]

    def row(self, obj: Model) -> dict[str, Any]:
        return {column: _json_value(prep(read(obj))) for column, read, prep in self._readers}

    @cached_property
    def _readers(self) -> list[tuple[str, Callable[[Model], Any], Callable[[Any], Any]]]:
        """(column, how save() reads the value off the instance, Field.get_prep_value) per field: Field.pre_save,
        for the fields that override it (auto_now, auto_now_add, ...); for the rest, what Field.pre_save does
        (the attribute), read directly (a placement builds six rows: a tenth of its API request went here)."""
        return [(field.column,
                 (partial(_pre_save, field) if type(field).pre_save is not Field.pre_save
                  else attrgetter(field.attname)),
                 field.get_prep_value) for field in self.fields]


def _pre_save(field: Field, obj: Model) -> Any:
    return field.pre_save(obj, True)


def _json_value(value: Any) -> Any:
    """orjson writes the rest (datetimes with offset and microseconds, UUIDs, JSON fields' values); a Decimal is
    written exactly, as a string (never inside a JSON field's value, which the ORM would refuse too)."""
    return str(value) if isinstance(value, Decimal) else value


def insert_select(model: type[Model], computed: Mapping[str, str] | None = None, *,
                  in_row: Iterable[str] = ()) -> InsertSelect:
    """The INSERT ... SELECT shape of `model` with the columns of `computed` (attname -> SQL expression) taken from
    the statement instead of the instance; those named in `in_row` are in the JSON row all the same, for their
    expression to use (r."<column>")."""
    computed = dict(computed or {})
    in_row = set(in_row)
    meta = model._meta
    written = [f for f in meta.local_concrete_fields if not f.generated and f is not meta.auto_field]
    unknown = set(computed) - {f.attname for f in written}
    if unknown:
        raise ValueError(f"{model.__name__} has no written column {sorted(unknown)}")
    fields = [f for f in written if f.attname not in computed or f.attname in in_row]
    values = [computed.get(f.attname, f'r."{f.column}"') for f in written]
    return InsertSelect(model, fields, ", ".join(f'"{f.column}"' for f in written), ", ".join(values))
