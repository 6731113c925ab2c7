"""Evaluation chunks use the one jobs kernel's field names (reviewapp.jobs.Job); data kept.

``claim_token`` is the kernel's ``lease_owner``; ``claimed_at`` (the last claim) becomes
``started_at`` (the first claim: the kernel keeps it on later claims).
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("evaluations", "0002_run_dataset_version_runchunk_expectations"),
    ]

    operations = [
        migrations.RenameField(model_name="runchunk", old_name="claim_token", new_name="lease_owner"),
        migrations.RenameField(model_name="runchunk", old_name="claimed_at", new_name="started_at"),
        migrations.AlterField(
            model_name="runchunk", name="lease_owner", field=models.CharField(blank=True, max_length=64)
        ),
        migrations.AlterField(model_name="runchunk", name="attempts", field=models.PositiveIntegerField(default=0)),
    ]
