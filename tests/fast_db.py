"""Two costs every transactional test pays (~270 of them in the suite; live_server, transactional_db or
transaction=True), cut for the test process only:

- The flush at its end. On PostgreSQL Django's flush is one TRUNCATE of every table: 0.4-1 s on these machines
  (new files for each of ~40 tables), against ~0.02 s for a DELETE FROM each. Here it is DELETEs, run as Django runs
  a flush (one transaction). The foreign keys Django creates on PostgreSQL are DEFERRABLE INITIALLY DEFERRED
  (checked at commit, when every table is empty), so the order of the DELETEs does not matter; the migrations add
  no other constraints or triggers. A flush that resets sequences keeps Django's TRUNCATE ... RESTART IDENTITY.
  SQLite's flush is DELETEs already.
- The restore at its start (serialized_rollback, tests/conftest.py): Django saves each of the ~250 reference rows
  (accelerators, regions, content types, permissions) one by one, an UPDATE then an INSERT each (~0.27 s); here
  each model's rows are one INSERT ... ON CONFLICT (pk) DO UPDATE (the same rows in the end), in the same
  transaction with the same constraint check at its end. Rows with many-to-many data or deferred fields (none
  today) are still saved one by one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from io import StringIO

from django.core import serializers
from django.db import transaction
from django.db.backends.base.creation import BaseDatabaseCreation
from django.db.backends.postgresql.operations import DatabaseOperations


def _delete_flush(truncate):
    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        if reset_sequences or not tables:
            return truncate(self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade)
        return [f"{style.SQL_KEYWORD('DELETE FROM')} {style.SQL_FIELD(self.quote_name(table))};" for table in tables]

    return sql_flush


def _bulk_deserialize(self: BaseDatabaseCreation, data: str) -> None:
    """deserialize_db_from_string with one upsert per model instead of a save() per row."""
    alias = self.connection.alias
    by_model: dict[type, list] = {}
    one_by_one = []
    with transaction.atomic(using=alias):
        with self.connection.constraint_checks_disabled():
            for obj in serializers.deserialize("json", StringIO(data), using=alias):
                if obj.m2m_data or obj.deferred_fields:
                    one_by_one.append(obj)
                else:
                    by_model.setdefault(type(obj.object), []).append(obj.object)
            for model, objects in by_model.items():
                _upsert(model, objects, alias)
            for obj in one_by_one:
                obj.save()
        tables = {model._meta.db_table for model in by_model} | {obj.object._meta.db_table for obj in one_by_one}
        self.connection.check_constraints(table_names=tables)


def _upsert(model: type, objects: list, alias: str) -> None:
    """INSERT ... ON CONFLICT (pk) DO UPDATE: what save() does to a row with its pk set (the first transactional
    test restores over the rows the migrations left; after a flush every table is empty)."""
    pk = model._meta.pk
    fields = [f.name for f in model._meta.concrete_fields if f is not pk]
    manager = model._base_manager.using(alias)
    if fields:
        manager.bulk_create(objects, update_conflicts=True, unique_fields=[pk.name], update_fields=fields)
    else:
        manager.bulk_create(objects, ignore_conflicts=True)


@contextmanager
def fast_flush_and_restore() -> Iterator[None]:
    truncate, restore = DatabaseOperations.sql_flush, BaseDatabaseCreation.deserialize_db_from_string
    DatabaseOperations.sql_flush = _delete_flush(truncate)
    BaseDatabaseCreation.deserialize_db_from_string = _bulk_deserialize
    try:
        yield
    finally:
        DatabaseOperations.sql_flush, BaseDatabaseCreation.deserialize_db_from_string = truncate, restore
