"""Blind review: Project.show_model_to_reviewers and sibling_spacing; Item.request_hash, filled in."""

import hashlib
import json

import django.core.validators
from django.db import migrations, models

BATCH = 2000


# A frozen copy of reviewapp.blind.request_hash (migrations never import app code).
def _squash(text):
    return " ".join(str(text).split())


def _request_hash(request):
    if isinstance(request, dict):
        messages = [m for m in request.get("messages") or [] if isinstance(m, dict)]
        turns = [[str(m.get("role", "")), _squash(m.get("content", ""))] for m in messages]
        canonical = ["text", turns[0][1]] if len(turns) == 1 and turns[0][0] == "user" else ["chat", turns]
    else:
        canonical = ["text", _squash(request)]
    digest = hashlib.sha256(json.dumps(canonical, ensure_ascii=False, separators=(",", ":")).encode()).hexdigest()
    return digest[:32]


def fill_request_hash(apps, schema_editor):
    Item = apps.get_model("reviewapp", "Item")
    batch = []
    for item in Item.objects.filter(request_hash="").only("id", "request").order_by("id").iterator(chunk_size=BATCH):
        item.request_hash = _request_hash(item.request)
        batch.append(item)
        if len(batch) >= BATCH:
            Item.objects.bulk_update(batch, ["request_hash"])
            batch = []
    if batch:
        Item.objects.bulk_update(batch, ["request_hash"])


class Migration(migrations.Migration):
    dependencies = [("reviewapp", "0005_curated_label_feed_index")]

    operations = [
        migrations.AddField(
            model_name="item",
            name="request_hash",
            field=models.CharField(blank=True, db_default="", default="", max_length=32),
        ),
        migrations.AddField(
            model_name="project",
            name="show_model_to_reviewers",
            field=models.BooleanField(
                default=False, help_text="Show reviewers which model and version wrote each answer."
            ),
        ),
        migrations.AddField(
            model_name="project",
            name="sibling_spacing",
            field=models.PositiveSmallIntegerField(
                default=10,
                help_text="Other items a reviewer gets between two answers to the same request (0: off).",
                validators=[django.core.validators.MaxValueValidator(1000)],
            ),
        ),
        migrations.RunPython(fill_request_hash, migrations.RunPython.noop),
    ]
