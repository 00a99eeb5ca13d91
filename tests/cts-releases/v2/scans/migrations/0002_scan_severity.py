"""Release v2: a new nullable column, and one row per run of this migration (source
"migration"), so a test can count how many times it ran."""
import socket

from django.db import migrations, models


def record_run(apps, schema_editor):
    Scan = apps.get_model("scans", "Scan")
    Scan.objects.create(package="migration 0002", source="migration", host=socket.gethostname())


class Migration(migrations.Migration):

    dependencies = [
        ("scans", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="scan",
            name="severity",
            field=models.CharField(blank=True, max_length=20, null=True),
        ),
        migrations.RunPython(record_run, migrations.RunPython.noop),
    ]
