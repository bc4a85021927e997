from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

pytestmark = pytest.mark.django_db(transaction=True)
BEFORE = [("sharing", "0005_patient_name_prefix_index")]
PREVIEW = [("sharing", "0006_study_preview_series")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_existing_studies_are_previewed_by_their_first_image_series_with_a_thumbnail():
    apps = migrate(BEFORE)
    Patient, Study, Series = (apps.get_model("sharing", name) for name in ("Patient", "Study", "Series"))
    patient = Patient.objects.create(patient_id="MRN-1", issuer="GENERAL")
    now = timezone.now()

    def study(uid):
        return Study.objects.create(
            study_instance_uid=uid, patient=patient, first_received_at=now, last_received_at=now
        )

    def series(study, uid, number, key="", kind=""):
        return Series.objects.create(
            series_instance_uid=uid, study=study, series_number=number, thumbnail_key=key, thumbnail_kind=kind
        )

    images = study("1.1")
    series(images, "1.1.3", 3, "thumbnails/3.jpg", "image")
    second = series(images, "1.1.2", 2, "thumbnails/2.jpg", "image")
    series(images, "1.1.1", 1, "thumbnails/1.png", "report")
    series(images, "1.1.0", 0)
    report_only = study("2.1")
    series(report_only, "2.1.1", 1, "thumbnails/r.png", "report")

    try:
        apps = migrate(PREVIEW)
        Study = apps.get_model("sharing", "Study")
        assert Study.objects.get(study_instance_uid="1.1").preview_series_id == second.pk
        assert Study.objects.get(study_instance_uid="2.1").preview_series_id is None
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
