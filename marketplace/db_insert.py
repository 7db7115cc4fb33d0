"""INSERT ... SELECT statements built from the models, for the few hot writes written as SQL on PostgreSQL.

A statement that writes several rows in one round trip (a data-modifying WITH query: an order, then rows that
refer to it by the id its INSERT returned) cannot go through the ORM's save(). `insert_select` builds, once per
model, the column list and the SELECT list of such an INSERT: every column the ORM's own INSERT would write
(concrete, not generated, not the auto primary key), each either a parameter or an SQL expression the caller
names (`o."id"`: the id returned by an earlier part of the statement). `params(obj)` gives the parameters from an
unsaved instance exactly as save() would send them (Field.pre_save for auto_now/auto_now_add, then
get_db_prep_save: JSON adapted, and so on). Parameters of non-text columns are cast to the column's type: a bare
parameter in a SELECT list has no type for PostgreSQL to infer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db.models import Field, Model

TEXT_TYPES = frozenset({"CharField", "TextField", "SlugField", "EmailField", "URLField"})


@dataclass(frozen=True)
class InsertSelect:
    model: type[Model]
    fields: list[Field]  # the columns given as parameters, in the order of their placeholders
    columns: str  # "a", "b", ... (every column written)
    values: str  # the SELECT list, one entry per column

    def head(self) -> str:
        """INSERT INTO <table> (<columns>)"""
        return f'INSERT INTO "{self.model._meta.db_table}" ({self.columns})'

    def select(self, source: str = "") -> str:
        """SELECT <values> [FROM <source>]: one row per source row (its parameters: params())."""
        return f"SELECT {self.values}" + (f" FROM {source}" if source else "")

    def sql(self, source: str = "", *, returning: str = '"id"') -> str:
        """INSERT INTO <table> (<columns>) SELECT <values> [FROM <source>] RETURNING <returning>."""
        return f"{self.head()} {self.select(source)} RETURNING {returning}"

    def params(self, obj: Model, connection) -> list[Any]:
        return [field.get_db_prep_save(field.pre_save(obj, True), connection) for field in self.fields]


def insert_select(model: type[Model], connection, computed: Mapping[str, str] | None = None) -> InsertSelect:
    """The INSERT ... SELECT shape of `model` with the columns of `computed` (attname -> SQL expression) taken from
    the statement instead of the instance."""
    computed = dict(computed or {})
    meta = model._meta
    written = [f for f in meta.local_concrete_fields if not f.generated and f is not meta.auto_field]
    unknown = set(computed) - {f.attname for f in written}
    if unknown:
        raise ValueError(f"{model.__name__} has no written column {sorted(unknown)}")
    fields, values = [], []
    for field in written:
        if field.attname in computed:
            values.append(computed[field.attname])
            continue
        fields.append(field)
        values.append("%s" if field.get_internal_type() in TEXT_TYPES else f"CAST(%s AS {field.db_type(connection)})")
    columns = ", ".join(f'"{f.column}"' for f in written)
    return InsertSelect(model, fields, columns, ", ".join(values))
