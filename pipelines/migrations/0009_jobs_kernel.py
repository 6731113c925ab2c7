"""Exports, rollouts and assessment syncs use the one jobs kernel's field names (reviewapp.jobs.Job); data kept.

- ExportJob: ``claim_token`` is the kernel's ``lease_owner``; ``enqueued_at`` is new (queued rows:
  their creation time, so the sweeper does not take them for lost messages at once).
- Rollout: ``attempts`` is new (a rollout that started had at least one).
- AssessmentSync: ``synced_at`` is the kernel's ``finished_at``; the claim time ``claimed_at``
  becomes a lease expiry (claim + the 5-minute lease) and the start of the attempt.
"""

from datetime import timedelta

from django.db import migrations, models
from django.db.models import F

LEASE = timedelta(minutes=5)  # the assessment sync's lease when claimed_at was written


def forwards(apps, schema_editor):
    ExportJob = apps.get_model("pipelines", "ExportJob")
    ExportJob.objects.filter(status="queued", enqueued_at__isnull=True).update(enqueued_at=F("created_at"))
    Rollout = apps.get_model("pipelines", "Rollout")
    Rollout.objects.filter(started_at__isnull=False).update(attempts=1)
    AssessmentSync = apps.get_model("pipelines", "AssessmentSync")
    for pk, claimed_at in AssessmentSync.objects.filter(claimed_at__isnull=False).values_list("pk", "claimed_at"):
        AssessmentSync.objects.filter(pk=pk).update(started_at=claimed_at, lease_expires_at=claimed_at + LEASE)
    AssessmentSync.objects.filter(status="pending", enqueued_at__isnull=True).update(enqueued_at=F("created_at"))


def backwards(apps, schema_editor):
    AssessmentSync = apps.get_model("pipelines", "AssessmentSync")
    for pk, expires in AssessmentSync.objects.filter(lease_expires_at__isnull=False).values_list(
        "pk", "lease_expires_at"
    ):
        AssessmentSync.objects.filter(pk=pk).update(claimed_at=expires - LEASE)


class Migration(migrations.Migration):
    dependencies = [
        ("pipelines", "0008_environment_owned_port_endpoint"),
    ]

    operations = [
        # exports
        migrations.RenameField(model_name="exportjob", old_name="claim_token", new_name="lease_owner"),
        migrations.AlterField(
            model_name="exportjob", name="lease_owner", field=models.CharField(blank=True, max_length=64)
        ),
        migrations.AlterField(model_name="exportjob", name="attempts", field=models.PositiveIntegerField(default=0)),
        migrations.AddField(
            model_name="exportjob", name="enqueued_at", field=models.DateTimeField(blank=True, null=True)
        ),
        # rollouts
        migrations.AddField(model_name="rollout", name="attempts", field=models.PositiveIntegerField(default=0)),
        migrations.AlterField(
            model_name="rollout", name="lease_owner", field=models.CharField(blank=True, max_length=64)
        ),
        migrations.AlterField(
            model_name="rollout", name="enqueued_at", field=models.DateTimeField(blank=True, null=True)
        ),
        # assessment syncs
        migrations.RenameField(model_name="assessmentsync", old_name="synced_at", new_name="finished_at"),
        migrations.AlterField(
            model_name="assessmentsync", name="attempts", field=models.PositiveIntegerField(default=0)
        ),
        migrations.AddField(
            model_name="assessmentsync", name="lease_owner", field=models.CharField(blank=True, max_length=64)
        ),
        migrations.AddField(
            model_name="assessmentsync", name="lease_expires_at", field=models.DateTimeField(blank=True, null=True)
        ),
        migrations.AddField(
            model_name="assessmentsync", name="enqueued_at", field=models.DateTimeField(blank=True, null=True)
        ),
        migrations.AddField(
            model_name="assessmentsync", name="started_at", field=models.DateTimeField(blank=True, null=True)
        ),
        migrations.RunPython(forwards, backwards),
        migrations.RemoveField(model_name="assessmentsync", name="claimed_at"),
    ]
