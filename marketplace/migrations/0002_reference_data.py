"""Seed the accelerator catalog and the energy regions from broker/data (idempotent)."""

from django.db import migrations


def seed(apps, schema_editor):
    from marketplace.services.reference import sync_accelerators, sync_energy_regions

    sync_accelerators(apps.get_model("marketplace", "Accelerator"))
    sync_energy_regions(apps.get_model("marketplace", "Region"))


class Migration(migrations.Migration):
    dependencies = [("marketplace", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
