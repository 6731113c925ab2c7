"""A local port and a Databricks serving endpoint belong to one environment (issue 11 §1).

Before the constraints, duplicates left by older versions (every project's default environments got
the same two ports) are resolved: the oldest environment keeps the port or endpoint name; a later one
gets the next port no environment uses, or loses the endpoint name (its next rollout then says that
it names none, instead of replacing another project's model).
"""

from django.db import migrations, models


def resolve_duplicates(apps, schema_editor):
    Environment = apps.get_model("pipelines", "Environment")
    taken = set()
    rows = list(Environment.objects.exclude(local_port=None).order_by("id"))
    used = {row.local_port for row in rows}
    for row in rows:
        if row.local_port in taken:
            port = max(used | taken) + 1
            used.add(port)
            row.local_port = port
            row.save(update_fields=["local_port"])
        taken.add(row.local_port)
    names = set()
    for row in Environment.objects.exclude(serving_endpoint="").order_by("id"):
        if row.serving_endpoint in names:
            row.serving_endpoint = ""
            row.save(update_fields=["serving_endpoint"])
        names.add(row.serving_endpoint)


class Migration(migrations.Migration):
    dependencies = [
        ("pipelines", "0007_environment_soak_limits_rollout_reason"),
    ]

    operations = [
        migrations.RunPython(resolve_duplicates, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="environment",
            constraint=models.UniqueConstraint(
                condition=models.Q(("local_port__isnull", False)),
                fields=("local_port",),
                name="environment_local_port_owned",
            ),
        ),
        migrations.AddConstraint(
            model_name="environment",
            constraint=models.UniqueConstraint(
                condition=models.Q(("serving_endpoint", ""), _negated=True),
                fields=("serving_endpoint",),
                name="environment_endpoint_owned",
            ),
        ),
    ]
