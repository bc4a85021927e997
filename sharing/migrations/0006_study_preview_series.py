"""Each study points at the series whose thumbnail stands for it in lists (its first image series
with a thumbnail), so the library reads its cards in one query. Filled here for existing studies;
the thumbnail task keeps it from then on."""

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def fill(apps, schema_editor):
    Series = apps.get_model("sharing", "Series")
    Study = apps.get_model("sharing", "Study")
    first = (
        Series.objects.filter(study=OuterRef("pk"), thumbnail_kind="image")
        .exclude(thumbnail_key="")
        .order_by("series_number", "pk")
        .values("pk")[:1]
    )
    Study.objects.update(preview_series=Subquery(first))


class Migration(migrations.Migration):
    dependencies = [("sharing", "0005_patient_name_prefix_index")]

    operations = [
        migrations.AddField(
            model_name="study",
            name="preview_series",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="sharing.series",
            ),
        ),
        migrations.RunPython(fill, migrations.RunPython.noop, elidable=True),
    ]
