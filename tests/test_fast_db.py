"""tests/fast_db.py: the flush leaves every table empty, and the restore brings back exactly the rows that were
serialized (also over rows that differ), on both engines.

The test serializes the database itself rather than using the copy taken when the test database was created:
after the first browser test, Playwright's event loop in the test thread gives Django's connection handler another
context, whose connection lacks that copy, so later transactional tests are not restored (tests/portal/conftest.py's
portal_data syncs the reference rows again for that reason)."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.core.management import call_command
from django.core.management.color import no_style
from django.db import connection

pytestmark = [pytest.mark.db_engine, pytest.mark.django_db(transaction=True)]


def _rows() -> dict[str, list[dict]]:
    return {model._meta.label: list(model._base_manager.order_by("pk").values())
            for model in apps.get_models() if model._meta.managed}


def test_flush_empties_every_table_and_the_restore_brings_back_the_serialized_rows_as_they_were():
    from marketplace.models import Accelerator, Region, User
    from marketplace.services.reference import sync_accelerators, sync_energy_regions

    sync_accelerators(Accelerator)
    sync_energy_regions(Region)
    contents = connection.creation.serialize_db_to_string()
    before = _rows()
    assert before["marketplace.Region"] and before["marketplace.Accelerator"]
    User.objects.create_user(username="someone", password="pw-someone-123")
    Region.objects.filter(pk=before["marketplace.Region"][0]["id"]).update(name="renamed")

    if connection.vendor == "postgresql":  # SQLite's flush is DELETEs already
        assert connection.ops.sql_flush(no_style(), ["marketplace_region"]) == ['DELETE FROM "marketplace_region";']
    call_command("flush", interactive=False, verbosity=0, inhibit_post_migrate=True)
    assert {label: rows for label, rows in _rows().items() if rows} == {}

    Region.objects.create(**{**before["marketplace.Region"][0], "name": "differs"})  # the restore overwrites it
    connection.creation.deserialize_db_from_string(contents)
    assert _rows() == before
