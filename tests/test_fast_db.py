"""tests/fast_db.py: the flush leaves every table empty, and the restore brings back exactly the reference rows the
migrations wrote (also over rows that differ), on both engines."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.core.management import call_command
from django.core.management.color import no_style
from django.db import connection

pytestmark = [pytest.mark.db_engine, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def _rows() -> dict[str, list[dict]]:
    return {model._meta.label: list(model._base_manager.order_by("pk").values())
            for model in apps.get_models() if model._meta.managed}


def test_flush_empties_every_table_and_the_restore_brings_back_the_reference_rows_as_they_were():
    from marketplace.models import Region, User

    before = _rows()
    assert before["marketplace.Region"] and before["auth.Permission"]  # the migrations' reference rows
    User.objects.create_user(username="someone", password="pw-someone-123")
    Region.objects.filter(pk=before["marketplace.Region"][0]["id"]).update(name="renamed")

    if connection.vendor == "postgresql":  # SQLite's flush is DELETEs already
        assert connection.ops.sql_flush(no_style(), ["marketplace_region"]) == ['DELETE FROM "marketplace_region";']
    call_command("flush", interactive=False, verbosity=0, inhibit_post_migrate=True)
    assert {label: rows for label, rows in _rows().items() if rows} == {}

    Region.objects.create(**{**before["marketplace.Region"][0], "name": "differs"})  # the restore overwrites it
    connection.creation.deserialize_db_from_string(connection._test_serialized_contents)
    assert _rows() == before
