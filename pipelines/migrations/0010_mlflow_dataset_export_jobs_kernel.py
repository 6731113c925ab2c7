"""Materialising a dataset version in MLflow is a job of the one jobs kernel (reviewapp.jobs.Job); data kept.

It had no claim: the lease fields are new, and a row left "running" (no lease to expire) goes back
to "queued" so a later run or the sweeper takes it.
"""

from django.db import migrations, models
from django.db.models import F


def forwards(apps, schema_editor):
    MlflowDatasetExport = apps.get_model("pipelines", "MlflowDatasetExport")
    MlflowDatasetExport.objects.filter(attempts__gt=0).update(started_at=F("created_at"))
    MlflowDatasetExport.objects.filter(status="running").update(status="queued", enqueued_at=F("created_at"))


class Migration(migrations.Migration):
    dependencies = [
        ("pipelines", "0009_jobs_kernel"),
    ]

    operations = [
        migrations.AddField(
            model_name="mlflowdatasetexport", name="enqueued_at", field=models.DateTimeField(blank=True, null=True)
        ),
        migrations.AddField(
            model_name="mlflowdatasetexport",
            name="lease_expires_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="mlflowdatasetexport",
            name="lease_owner",
            field=models.CharField(blank=True, max_length=64),
        ),
        migrations.AddField(
            model_name="mlflowdatasetexport", name="started_at", field=models.DateTimeField(blank=True, null=True)
        ),
        migrations.AlterField(
            model_name="mlflowdatasetexport", name="attempts", field=models.PositiveIntegerField(default=0)
        ),
        migrations.AlterField(
            model_name="mlflowdatasetexport",
            name="status",
            field=models.CharField(
                choices=[("queued", "Queued"), ("running", "Running"), ("done", "Done"), ("failed", "Failed")],
                default="queued",
                max_length=8,
            ),
        ),
        migrations.RunPython(forwards, migrations.RunPython.noop),
    ]
