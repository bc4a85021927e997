from __future__ import annotations

import datetime
from http import HTTPStatus

import pytest
from django.db import connection
from django.http import StreamingHttpResponse
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from sharing.dicom.synthetic import SyntheticPatient, mr_series, sr_report, write_study
from sharing.models import AuditEvent, Instance, Patient, Series, Study
from sharing.services.thumbnails import study_preview_update
from tests.support.factories import ingest, make_study

pytestmark = pytest.mark.django_db(transaction=True)
HOSTILE = "<script>alert(1)</script>"


@pytest.fixture
def janes_study(tmp_path, patient, jane) -> Study:
    return make_study(tmp_path, patient, "jane")


@pytest.fixture
def johns_study(tmp_path, john) -> Study:
    other = SyntheticPatient(patient_id="MRN-2002", issuer="GENERAL", name="ROE^JOHN")
    return make_study(tmp_path, other, "john")


def ct_of(study: Study) -> Series:
    return study.series.get(modality="CT")


def pdf_of(study: Study) -> Instance:
    return Instance.objects.get(series__study=study, series__modality="DOC")


def thumbnail_url(study: Study) -> str:
    return reverse("series-thumbnail", args=[study.study_instance_uid, ct_of(study).series_instance_uid])


def preview_url(study: Study) -> str:
    return reverse("study-thumbnail", args=[study.study_instance_uid])


def pdf_url(study: Study) -> str:
    return reverse("report-pdf", args=[study.study_instance_uid, pdf_of(study).sop_instance_uid])


def body(response) -> bytes:
    if isinstance(response, StreamingHttpResponse):
        return b"".join(response)
    return bytes(response.content)


def quick_study(patient: Patient, uid: str, *, modality: str = "CT", study_date: str = "2026-01-15") -> Study:
    """A study row with one series that has a thumbnail key, without rendering anything."""
    now = timezone.now()
    study = Study.objects.create(
        study_instance_uid=uid,
        patient=patient,
        study_date=datetime.date.fromisoformat(study_date),
        description=f"Study {uid}",
        modalities=modality,
        number_of_instances=1,
        first_received_at=now,
        last_received_at=now,
        completed_at=now,
    )
    Series.objects.create(
        series_instance_uid=f"{uid}.1",
        study=study,
        modality=modality,
        series_number=1,
        number_of_instances=1,
        thumbnail_key=f"thumbnails/{uid}.jpg",
        thumbnail_kind="image",
    )
    study_preview_update(study_id=study.pk)
    return study


def test_the_owner_sees_their_studies_as_cards_with_thumbnails(client, jane, janes_study):
    Study.objects.filter(pk=janes_study.pk).update(completed_at=timezone.now())
    client.force_login(jane)

    response = client.get(reverse("home"))

    assert response.status_code == HTTPStatus.OK
    assert list(response.context["studies"]) == [janes_study]
    page = response.content.decode()
    url = preview_url(janes_study)
    assert f'src="{url}"' in page
    assert 'alt="Preview of this study\'s images"' in page
    assert reverse("study", args=[janes_study.study_instance_uid]) in page
    assert "From your hospital" in page
    assert ">Report<" in page
    assert ">New<" in page
    thumbnail = client.get(url)
    assert thumbnail.status_code == HTTPStatus.OK
    assert thumbnail["Content-Type"] == "image/jpeg"
    # The study's thumbnail is its CT's: the report series have none.
    assert thumbnail["ETag"] == f'"{ct_of(janes_study).thumbnail_key}"'
    assert body(thumbnail).startswith(b"\xff\xd8")


def test_a_study_completed_weeks_ago_is_no_longer_new(client, jane, janes_study):
    Study.objects.filter(pk=janes_study.pk).update(completed_at=timezone.now() - datetime.timedelta(days=15))
    client.force_login(jane)

    response = client.get(reverse("home"))

    assert b">New<" not in response.content


@pytest.mark.parametrize("url_of", [thumbnail_url, preview_url], ids=["series", "study"])
def test_a_thumbnail_is_cached_privately_and_revalidated_by_its_etag(client, jane, janes_study, url_of):
    client.force_login(jane)
    url = url_of(janes_study)

    first = client.get(url)
    again = client.get(url, HTTP_IF_NONE_MATCH=first["ETag"])

    assert first["Cache-Control"] == "private, no-cache"
    assert first["ETag"] == f'"{ct_of(janes_study).thumbnail_key}"'
    assert again.status_code == HTTPStatus.NOT_MODIFIED
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.VIEW).exists()


def test_the_study_page_shows_the_series_and_the_text_report(client, jane, janes_study):
    client.force_login(jane)

    response = client.get(reverse("study", args=[janes_study.study_instance_uid]))

    assert response.status_code == HTTPStatus.OK
    page = response.content.decode()
    assert "No acute findings." in page
    assert "CT CHEST W/O CONTRAST" in page
    assert thumbnail_url(janes_study) in page
    assert pdf_url(janes_study) in page
    assert "Open the report (PDF)" in page
    assert "<dd>REFERRER DEMO</dd>" in page
    assert reverse("study-download", args=[janes_study.study_instance_uid]) in page
    assert reverse("study-download-jpeg", args=[janes_study.study_instance_uid]) in page
    assert "<iframe" not in page
    assert "<object" not in page


def test_the_pdf_report_opens_in_the_browser(client, jane, janes_study):
    client.force_login(jane)

    response = client.get(pdf_url(janes_study))

    assert response.status_code == HTTPStatus.OK
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == 'inline; filename="report.pdf"'
    assert response["Cache-Control"] == "private, no-store"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert body(response).startswith(b"%PDF")


def test_each_study_page_view_is_audited(client, jane, janes_study):
    client.force_login(jane)
    url = reverse("study", args=[janes_study.study_instance_uid])

    client.get(url)
    client.get(url)

    events = AuditEvent.objects.filter(action=AuditEvent.Action.VIEW)
    assert events.count() == 2
    event = events.first()
    assert event is not None
    assert event.actor_user == jane
    assert event.study_instance_uid == janes_study.study_instance_uid
    assert event.patient == janes_study.patient


def test_another_patients_study_thumbnail_and_report_are_not_found(client, jane, johns_study):
    client.force_login(jane)

    for url in (
        reverse("study", args=[johns_study.study_instance_uid]),
        thumbnail_url(johns_study),
        preview_url(johns_study),
        pdf_url(johns_study),
    ):
        response = client.get(url)
        assert response.status_code == HTTPStatus.NOT_FOUND
        assert b"ROE" not in body(response)
    home = client.get(reverse("home"))
    assert johns_study.study_instance_uid.encode() not in home.content
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.VIEW).exists()


def test_a_series_of_another_study_is_not_found_through_yours(client, jane, janes_study, johns_study):
    client.force_login(jane)
    url = reverse(
        "series-thumbnail", args=[janes_study.study_instance_uid, ct_of(johns_study).series_instance_uid]
    )

    assert client.get(url).status_code == HTTPStatus.NOT_FOUND


def test_anonymous_visitors_are_sent_to_sign_in(client, janes_study):
    for url in (
        reverse("home"),
        reverse("study", args=[janes_study.study_instance_uid]),
        thumbnail_url(janes_study),
        preview_url(janes_study),
        pdf_url(janes_study),
    ):
        response = client.get(url)
        assert response.status_code == HTTPStatus.FOUND
        assert response["Location"].startswith(reverse("account_login"))
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.VIEW).exists()


def test_records_staff_can_open_any_study_page(client, staff, johns_study):
    client.force_login(staff)

    page = client.get(reverse("study", args=[johns_study.study_instance_uid]))
    thumbnail = client.get(thumbnail_url(johns_study))
    preview = client.get(preview_url(johns_study))
    pdf = client.get(pdf_url(johns_study))

    assert page.status_code == HTTPStatus.OK
    assert b"No acute findings." in page.content
    assert thumbnail.status_code == HTTPStatus.OK
    assert preview.status_code == HTTPStatus.OK
    assert body(pdf).startswith(b"%PDF")
    assert AuditEvent.objects.filter(action=AuditEvent.Action.VIEW, actor_user=staff).count() == 2


def test_a_report_only_study_gets_a_report_tile(client, tmp_path, patient, jane):
    uid = "1.2.826.0.1.3680043.10.999.1"
    ingest(write_study([sr_report(patient, study_uid=uid, text="Letter only.")], tmp_path / "sr"))
    client.force_login(jane)

    response = client.get(reverse("home"))

    assert b'class="thumb-placeholder">Report<' in response.content
    assert b"/thumbnail" not in response.content
    assert client.get(reverse("study-thumbnail", args=[uid])).status_code == HTTPStatus.NOT_FOUND


def test_the_library_filters_by_modality_and_date(client, tmp_path, patient, jane, janes_study):
    mr = mr_series(patient, slices=2, size=32)
    ingest(write_study(mr, tmp_path / "mr"))
    mr_study = Study.objects.get(study_instance_uid=str(mr[0].StudyInstanceUID))
    client.force_login(jane)

    everything = client.get(reverse("home"))
    only_mr = client.get(reverse("home"), {"modality": "MR"})
    only_ct = client.get(reverse("home"), {"modality": "CT"})
    jan = client.get(reverse("home"), {"date_from": "2026-01-15", "date_to": "2026-01-15"})
    none = client.get(reverse("home"), {"date_from": "2030-01-01"})

    assert {"CT", "MR"} <= {value for value, _ in everything.context["form"].fields["modality"].choices}
    assert list(only_mr.context["studies"]) == [mr_study]
    assert list(only_ct.context["studies"]) == [janes_study]
    assert janes_study in list(jan.context["studies"])
    assert list(none.context["studies"]) == []
    assert b"No studies match these filters." in none.content
    assert b'<label for="id_modality">' in everything.content


def test_several_body_parts_read_as_a_list(client, jane):
    study = quick_study(Patient.objects.get(user=jane), "5.1")
    Study.objects.filter(pk=study.pk).update(body_parts="CHEST\\ABDOMEN")
    client.force_login(jane)

    library = client.get(reverse("home"))
    page = client.get(reverse("study", args=[study.study_instance_uid]))

    assert b"<dd>CHEST, ABDOMEN</dd>" in library.content
    assert b"<dd>CHEST, ABDOMEN</dd>" in page.content


def test_an_unknown_modality_is_an_error_not_a_crash(client, jane, janes_study):
    client.force_login(jane)

    response = client.get(reverse("home"), {"modality": "XX"})

    assert response.status_code == HTTPStatus.OK
    assert response.context["form"].errors


def test_the_library_is_paginated_by_24(client, jane):
    linked = Patient.objects.get(user=jane)
    for index in range(30):
        quick_study(linked, f"3.{index}", study_date=f"2025-{1 + index % 12:02d}-01")
    client.force_login(jane)

    first = client.get(reverse("home"), {"modality": "CT"})
    second = client.get(reverse("home"), {"modality": "CT", "page": 2})

    assert len(first.context["studies"]) == 24
    assert len(second.context["studies"]) == 6
    assert b"modality=CT&amp;page=2" in first.content
    shown = {s.pk for s in first.context["studies"]} | {s.pk for s in second.context["studies"]}
    assert len(shown) == 30


def test_the_library_costs_the_same_queries_whatever_its_length(client, jane):
    linked = Patient.objects.get(user=jane)
    for index in range(60):
        quick_study(linked, f"4.{index}", modality="MR" if index % 2 else "CT")
    client.force_login(jane)
    client.get(reverse("home"))  # the first request of a session starts its clocks (sharing.middleware)

    def queries(**params: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            response = client.get(reverse("home"), params)
        assert response.status_code == HTTPStatus.OK
        return len(captured)

    before = {"first": queries(), "second": queries(page="2"), "filtered": queries(modality="CT")}
    for index in range(60, 120):
        quick_study(linked, f"4.{index}")
    after = {"first": queries(), "second": queries(page="2"), "filtered": queries(modality="CT")}

    assert after == before


def test_a_library_that_fits_one_page_is_read_in_one_query_with_its_thumbnails(client, jane):
    linked = Patient.objects.get(user=jane)
    quick_study(linked, "6.1")
    quick_study(linked, "6.2", modality="MR")
    client.force_login(jane)
    client.get(reverse("home"))

    with CaptureQueriesContext(connection) as captured:
        response = client.get(reverse("home"))

    # The studies, with the series their thumbnails come from (the user comes from the cache, and
    # the session from Redis when there is one): no count, no list of modalities, no thumbnails.
    assert [q["sql"] for q in captured.captured_queries if "django_session" not in q["sql"]] == [
        captured.captured_queries[-1]["sql"]
    ]
    assert "sharing_study" in captured.captured_queries[-1]["sql"]
    assert response.content.decode().count('src="/studies/6.') == 2
    assert {"CT", "MR"} <= {value for value, _ in response.context["form"].fields["modality"].choices}
    assert b"Page 1 of" not in response.content


def test_dicom_text_with_markup_is_escaped_on_both_pages(client, tmp_path, jane):
    hostile = SyntheticPatient(patient_id="MRN-1001", issuer="GENERAL", name="DOE^JANE")
    study = make_study(tmp_path, hostile, "hostile", description=HOSTILE, pdf=False)
    client.force_login(jane)

    for url in (reverse("home"), reverse("study", args=[study.study_instance_uid])):
        page = client.get(url).content
        assert HOSTILE.encode() not in page
        assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_a_cda_report_is_shown_as_text_on_the_study_page(client, tmp_path, patient, jane):
    from sharing.dicom.synthetic import cda_report, ct_series

    ct = ct_series(patient, slices=2, size=32)
    uid = str(ct[0].StudyInstanceUID)
    ingest(
        write_study(
            [*ct, cda_report(patient, study_uid=uid, text="Mild degenerative change.")], tmp_path / "cda"
        )
    )
    client.force_login(jane)

    page = client.get(reverse("study", args=[uid])).content.decode()

    assert "Mild degenerative change." in page
    assert "No written report has arrived" not in page
