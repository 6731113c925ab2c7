"""Logging a run to MLflow becomes a job of the one jobs kernel (RunMlflowLog, keyed by the run); data kept.

Every finished run (succeeded or failed) gets its row: logged ones done with their MLflow ids, the
others queued with their last error and attempts, so the kernel's sweeper keeps trying them as the
beat task did. Then the ``mlflow_*`` columns leave the run.
"""

import django.db.models.deletion
from django.db import migrations, models


def forwards(apps, schema_editor):
    Run = apps.get_model("evaluations", "Run")
    RunMlflowLog = apps.get_model("evaluations", "RunMlflowLog")
    finished = Run.objects.filter(status__in=["succeeded", "failed"]).values_list(
        "pk",
        "mlflow_logged",
        "mlflow_run_id",
        "mlflow_experiment_id",
        "mlflow_error",
        "mlflow_attempts",
        "finished_at",
        "created_at",
    )
    rows = [
        RunMlflowLog(
            run_id=pk,
            status="done" if logged else "queued",
            mlflow_run_id=run_id,
            mlflow_experiment_id=experiment_id,
            error="" if logged else error,
            attempts=attempts,
            enqueued_at=finished_at or created_at,
            finished_at=finished_at if logged else None,
        )
        for pk, logged, run_id, experiment_id, error, attempts, finished_at, created_at in finished.iterator()
    ]
    RunMlflowLog.objects.bulk_create(rows, batch_size=1000)


def backwards(apps, schema_editor):
    Run = apps.get_model("evaluations", "Run")
    RunMlflowLog = apps.get_model("evaluations", "RunMlflowLog")
    for log in RunMlflowLog.objects.all().iterator():
        Run.objects.filter(pk=log.run_id).update(
            mlflow_logged=log.status == "done",
            mlflow_run_id=log.mlflow_run_id,
            mlflow_experiment_id=log.mlflow_experiment_id,
            mlflow_error=log.error,
            mlflow_attempts=log.attempts,
        )


class Migration(migrations.Migration):

    dependencies = [
        ('evaluations', '0003_run_chunk_jobs_kernel'),
    ]

    operations = [
        migrations.CreateModel(
            name='RunMlflowLog',
            fields=[
                ('attempts', models.PositiveIntegerField(default=0)),
                ('lease_owner', models.CharField(blank=True, max_length=64)),
                ('lease_expires_at', models.DateTimeField(blank=True, null=True)),
                ('enqueued_at', models.DateTimeField(blank=True, null=True)),
                ('started_at', models.DateTimeField(blank=True, null=True)),
                ('finished_at', models.DateTimeField(blank=True, null=True)),
                ('error', models.TextField(blank=True)),
                ('run', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='mlflow_log', serialize=False, to='evaluations.run')),
                ('status', models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('done', 'Logged'), ('failed', 'Failed')], default='queued', max_length=16)),
                ('mlflow_run_id', models.CharField(blank=True, max_length=64)),
                ('mlflow_experiment_id', models.CharField(blank=True, max_length=64)),
            ],
        ),
        migrations.RunPython(forwards, backwards),
        migrations.RemoveIndex(
            model_name='run',
            name='eval_run_mlflow_pending',
        ),
        migrations.RemoveField(
            model_name='run',
            name='mlflow_attempts',
        ),
        migrations.RemoveField(
            model_name='run',
            name='mlflow_claimed_at',
        ),
        migrations.RemoveField(
            model_name='run',
            name='mlflow_error',
        ),
        migrations.RemoveField(
            model_name='run',
            name='mlflow_experiment_id',
        ),
        migrations.RemoveField(
            model_name='run',
            name='mlflow_logged',
        ),
        migrations.RemoveField(
            model_name='run',
            name='mlflow_run_id',
        ),
        migrations.AddIndex(
            model_name='runmlflowlog',
            index=models.Index(fields=['status', 'enqueued_at'], name='eval_run_mlflow_log_open'),
        ),
    ]
