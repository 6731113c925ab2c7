"""Gates count items, not reviews: the kind ``min_reviews`` becomes ``min_items``.

Stored ``min_reviews`` gates are renamed (their ``count`` now counts done items: curated, or with
a complete set of reviews). The code still reads the old name (``pipelines.releases.gates.LEGACY_KINDS``).
"""

from django.db import migrations, models


def rename_forward(apps, schema_editor):
    PromotionGate = apps.get_model("pipelines", "PromotionGate")
    PromotionGate.objects.filter(kind="min_reviews").update(kind="min_items")


def rename_backward(apps, schema_editor):
    PromotionGate = apps.get_model("pipelines", "PromotionGate")
    PromotionGate.objects.filter(kind="min_items").update(kind="min_reviews")


class Migration(migrations.Migration):
    dependencies = [
        ("pipelines", "0005_dataset_version_failed_expectation_rows"),
    ]

    operations = [
        migrations.AlterField(
            model_name="promotiongate",
            name="kind",
            field=models.CharField(
                choices=[
                    ("suite_metric", "Evaluation suite metric"),
                    ("min_items", "Minimum reviewed items"),
                    ("min_pass_rate", "Minimum human pass rate (lower bound)"),
                    ("not_worse_than_champion", "Not worse than the champion"),
                ],
                max_length=32,
            ),
        ),
        migrations.RunPython(rename_forward, rename_backward),
    ]
