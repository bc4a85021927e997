"""The viewer's page: who may open it, what it tells the script, and that every opening is audited."""

from __future__ import annotations

from http import HTTPStatus

import pytest
from django.urls import reverse

from sharing.dicom.synthetic import SyntheticPatient
from sharing.models import AuditEvent, Study
from tests.support.factories import make_study
from tests.support.headers import assert_strict

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def janes_study(tmp_path, patient, jane) -> Study:
    return make_study(tmp_path, patient, "jane")


@pytest.fixture
def johns_study(tmp_path, john) -> Study:
    other = SyntheticPatient(patient_id="MRN-2002", issuer="GENERAL", name="ROE^JOHN")
    return make_study(tmp_path, other, "john")


def viewer_url(study: Study) -> str:
    return reverse("study-viewer", args=[study.study_instance_uid])


def test_the_owner_gets_the_viewer_with_everything_the_script_needs(client, jane, janes_study):
    client.force_login(jane)
    ct = janes_study.series.get(modality="CT")

    response = client.get(viewer_url(janes_study) + f"?series={ct.series_instance_uid}")

    assert response.status_code == HTTPStatus.OK
    html = response.content.decode()
    assert 'data-dicomweb-root="/dicomweb"' in html
    assert f'data-study-uid="{janes_study.study_instance_uid}"' in html
    assert f'data-series-uid="{ct.series_instance_uid}"' in html
    assert f'data-back-url="{reverse("study", args=[janes_study.study_instance_uid])}"' in html
    for series in janes_study.series.all():
        assert f'data-series-uid="{series.series_instance_uid}"' in html
    assert reverse("series-thumbnail", args=[janes_study.study_instance_uid, ct.series_instance_uid]) in html
    assert "viewer/viewer.js" in html
    assert "css/viewer.css" in html
    assert_strict(response)


def test_the_study_page_links_to_the_viewer(client, jane, janes_study):
    client.force_login(jane)

    response = client.get(reverse("study", args=[janes_study.study_instance_uid]))

    assert viewer_url(janes_study) in response.content.decode()


def test_another_patients_study_is_not_found(client, jane, johns_study):
    client.force_login(jane)

    response = client.get(viewer_url(johns_study))

    assert response.status_code == HTTPStatus.NOT_FOUND
    assert b"ROE" not in response.content
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.VIEW).exists()


def test_anonymous_visitors_are_sent_to_sign_in(client, janes_study):
    response = client.get(viewer_url(janes_study))

    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"].startswith(reverse("account_login"))
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.VIEW).exists()


def test_records_staff_can_open_any_study_in_the_viewer(client, staff, johns_study):
    client.force_login(staff)

    response = client.get(viewer_url(johns_study))

    assert response.status_code == HTTPStatus.OK
    assert AuditEvent.objects.filter(action=AuditEvent.Action.VIEW, actor_user=staff).count() == 1


def test_opening_the_viewer_is_audited(client, jane, janes_study):
    client.force_login(jane)

    client.get(viewer_url(janes_study), REMOTE_ADDR="192.0.2.7")

    event = AuditEvent.objects.get(action=AuditEvent.Action.VIEW)
    assert event.actor_user == jane
    assert event.study_instance_uid == janes_study.study_instance_uid
    assert event.patient == janes_study.patient
    assert event.detail["page"] == "viewer"


def test_the_viewer_only_answers_get(client, jane, janes_study):
    client.force_login(jane)

    assert client.post(viewer_url(janes_study)).status_code == HTTPStatus.METHOD_NOT_ALLOWED


def test_only_the_viewers_own_files_may_compile_webassembly(client, jane, janes_study, settings):
    client.force_login(jane)

    page = client.get(viewer_url(janes_study))
    worker = client.get(f"{settings.STATIC_URL}viewer/assets/decodeImageFrameWorker.js")
    other_static = client.get(f"{settings.STATIC_URL}css/lightbox.css")

    assert "wasm-unsafe-eval" not in page["Content-Security-Policy"]
    assert "script-src 'self' 'wasm-unsafe-eval';" in worker["Content-Security-Policy"]
    assert "wasm-unsafe-eval" not in other_static["Content-Security-Policy"]
