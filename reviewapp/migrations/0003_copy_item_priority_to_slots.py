"""Open slots now carry their item's priority (so the queue is one index scan); fill it in."""

from django.db import migrations
from django.db.models import OuterRef, Subquery


def copy_priority(apps, schema_editor):
    Assignment = apps.get_model("reviewapp", "Assignment")
    Item = apps.get_model("reviewapp", "Item")
    prioritised = Item.objects.exclude(priority=0).values("id")
    Assignment.objects.filter(item_id__in=prioritised, submitted_at__isnull=True).update(
        priority=Subquery(Item.objects.filter(pk=OuterRef("item_id")).values("priority")[:1])
    )


class Migration(migrations.Migration):
    dependencies = [("reviewapp", "0002_team_review")]

    operations = [migrations.RunPython(copy_priority, migrations.RunPython.noop)]
