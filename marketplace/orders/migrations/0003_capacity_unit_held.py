from django.db import migrations, models


def mark_held(apps, schema_editor):
    CapacityUnit = apps.get_model("orders", "CapacityUnit")
    Reservation = apps.get_model("orders", "Reservation")
    held = Reservation.objects.filter(active=True).values("unit_id")
    CapacityUnit.objects.filter(pk__in=held).update(held=True)


class Migration(migrations.Migration):
    dependencies = [("orders", "0002_order_key_salt")]

    operations = [
        migrations.AddField(
            model_name="capacityunit", name="held",
            field=models.BooleanField(default=False, help_text="Has an active reservation (kept with the reservations)."),
        ),
        migrations.RunPython(mark_held, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name="capacityunit",
            index=models.Index(condition=models.Q(("held", False), ("retired", False)), fields=["offer", "index"],
                               name="capacity_unit_free"),
        ),
        migrations.AddIndex(
            model_name="capacityunit",
            index=models.Index(condition=models.Q(("retired", True)), fields=["offer", "index"],
                               name="capacity_unit_retired"),
        ),
    ]
