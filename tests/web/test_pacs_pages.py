"""The records staff's PACS pages: search (against Orthanc), retrieve, follow the retrieval."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus

import pytest
from django.urls import reverse
from django.utils import timezone

from sharing.dicom.synthetic import SyntheticPatient, ct_series, mr_series, write_study
from sharing.models import AuditEvent, Facility, PacsNode, ReleaseAuthorization, RetrieveJob, Study, User
from tests.support.network import free_port
from tests.support.orthanc import Orthanc, running_orthanc

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

JANE = SyntheticPatient(patient_id="PACS-1001", issuer="HOSP", name="DOE^JANE", birth_date="19800101")


@dataclass
class Pacs:
    orthanc: Orthanc
    ct_uid: str
    mr_uid: str


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory) -> Iterator[Pacs]:
    tmp = tmp_path_factory.mktemp("pacs")
    ct = ct_series(JANE, slices=2, size=32, study_date="20260115")
    mr = mr_series(JANE, slices=2, size=32, study_date="20250601")
    modalities = {"lightbox": ("LIGHTBOX", "127.0.0.1", free_port())}
    with running_orthanc(
        tmp / "orthanc", http_port=free_port(), dicom_port=free_port(), modalities=modalities
    ) as running:
        running.upload_all(write_study([*ct, *mr], tmp / "studies"))
        yield Pacs(running, str(ct[0].StudyInstanceUID), str(mr[0].StudyInstanceUID))


@pytest.fixture
def node(orthanc, transactional_db) -> PacsNode:
    return PacsNode.objects.create(
        name="Main PACS", ae_title=orthanc.orthanc.ae_title, host="127.0.0.1", port=orthanc.orthanc.dicom_port
    )


def make_authorization(requester: User, node: PacsNode) -> ReleaseAuthorization:
    facility = Facility.objects.create(name="General Hospital", issuer="HOSP", pacs=node)
    now = timezone.now()
    return ReleaseAuthorization.objects.create(
        requester=requester,
        legal_name="Jane Doe",
        birth_date=datetime.date(1980, 1, 1),
        mrn="PACS-1001",
        contact_email="jane@example.com",
        facility=facility,
        scope_kind=ReleaseAuthorization.ScopeKind.DATE_RANGE,
        date_from=datetime.date(2026, 1, 1),
        date_to=datetime.date(2026, 12, 31),
        modalities="CT",
        recipient_kind=ReleaseAuthorization.Recipient.PATIENT,
        purpose="Personal use",
        typed_signature="Jane Doe",
        signature_key="sig",
        signed_at=now,
        received_at=now,
        due_on=now.date() + datetime.timedelta(days=30),
    )


def search(client, node: PacsNode, **criteria: str):
    return client.post(reverse("pacs-search"), {"pacs": node.pk, **criteria})


def test_staff_search_the_pacs_and_see_matches(client, staff, node, orthanc):
    client.force_login(staff)

    response = search(client, node, patient_name="doe")

    assert response.status_code == HTTPStatus.OK
    page = response.content.decode()
    assert "2 studies in Main PACS" in page
    assert orthanc.ct_uid in page
    assert orthanc.mr_uid in page
    assert "DOE JANE" in page
    assert "CT CHEST W/O CONTRAST" in page
    assert page.count(f'action="{reverse("pacs-retrieve")}"') == 2
    event = AuditEvent.objects.get(action=AuditEvent.Action.PACS_QUERY)
    assert event.actor_user == staff
    assert event.detail["criteria"] == {"patient_name": "doe*"}
    assert event.detail["matches"] == 2


def test_the_search_page_marks_studies_already_in_lightbox(client, staff, node, orthanc):
    from sharing.models import Patient

    now = timezone.now()
    patient = Patient.objects.create(patient_id="PACS-1001", issuer="HOSP")
    Study.objects.create(
        study_instance_uid=orthanc.ct_uid,
        patient=patient,
        number_of_instances=2,
        first_received_at=now,
        last_received_at=now,
    )
    client.force_login(staff)

    page = search(client, node, patient_id="PACS-1001").content.decode()

    assert page.count("In Lightbox (2)") == 1
    assert "Retrieve again" in page


def test_a_search_without_criteria_shows_field_errors_not_a_crash(client, staff, node):
    client.force_login(staff)

    response = search(client, node)

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert "Enter at least one of" in response.content.decode()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.PACS_QUERY).exists()


@pytest.mark.parametrize(
    ("criteria", "field_error"),
    [
        ({"patient_name": "DOE\\JANE"}, "must not contain a backslash"),
        ({"patient_id": "X", "modality": "C-T"}, "is not a DICOM modality code"),
        ({"patient_id": "X", "date_from": "2026-02-01", "date_to": "2026-01-01"}, "ends before it starts"),
        ({"patient_id": "X", "birth_date": "not a date"}, "Enter a valid date"),
        ({"modality": "CT"}, "A modality alone matches too much"),
    ],
)
def test_bad_criteria_are_field_errors(client, staff, node, criteria, field_error):
    client.force_login(staff)

    response = search(client, node, **criteria)

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert field_error in response.content.decode()


def test_a_pacs_that_is_down_is_reported_on_the_page(client, staff, transactional_db):
    down = PacsNode.objects.create(name="Down", ae_title="DOWN", host="127.0.0.1", port=free_port())
    client.force_login(staff)

    response = search(client, down, patient_id="X")

    assert response.status_code == HTTPStatus.OK
    assert "The search failed: PACS unreachable at 127.0.0.1:" in response.content.decode()
    assert (
        AuditEvent.objects.get(action=AuditEvent.Action.PACS_QUERY).outcome
        == AuditEvent.Outcome.SERIOUS_FAILURE
    )


def test_a_request_prefills_the_search(client, staff, node):
    auth = make_authorization(staff, node)
    client.force_login(staff)

    response = client.get(reverse("pacs-search"), {"request": auth.pk})

    form = response.context["form"]
    assert form.initial["patient_id"] == "PACS-1001"
    assert form.initial["patient_name"] == "Doe^Jane*"
    assert form.initial["birth_date"] == datetime.date(1980, 1, 1)
    assert form.initial["date_from"] == datetime.date(2026, 1, 1)
    assert form.initial["modality"] == "CT"
    assert form.initial["pacs"] == node.pk
    assert f'name="request" value="{auth.pk}"' in response.content.decode()


def test_an_unknown_request_is_404(client, staff, transactional_db):
    client.force_login(staff)

    assert client.get(reverse("pacs-search"), {"request": 999999}).status_code == HTTPStatus.NOT_FOUND


def test_retrieve_creates_a_job_and_shows_its_progress(client, staff, node, orthanc, scp):
    orthanc.orthanc.modality_set("lightbox", scp.ae_title, scp.host, scp.port)
    auth = make_authorization(staff, node)
    client.force_login(staff)

    response = client.post(
        reverse("pacs-retrieve"), {"pacs": node.pk, "study_instance_uid": orthanc.ct_uid, "request": auth.pk}
    )

    job = RetrieveJob.objects.get()
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == reverse("pacs-retrieval", args=[job.pk])
    assert job.authorization == auth
    assert job.requested_by == staff
    # Tasks run inline in tests: the study is already here and attached to the request.
    assert job.status == RetrieveJob.Status.DONE, job.message
    assert auth.studies.get().study_instance_uid == orthanc.ct_uid

    page = client.get(response["Location"]).content.decode()
    assert "Retrieved" in page
    assert 'src="/static/js/retrieval.js"' in page
    assert reverse("pacs-retrieval-json", args=[job.pk]) in page

    progress = client.get(reverse("pacs-retrieval-json", args=[job.pk])).json()
    assert progress == {
        "id": job.pk,
        "status": "done",
        "status_display": "Retrieved",
        "remaining": 0,
        "completed": 2,
        "failed": 0,
        "warning": 0,
        "message": "2 images received",
        "finished": True,
        "finished_at": progress["finished_at"],
    }
    actions = list(
        AuditEvent.objects.filter(action=AuditEvent.Action.PACS_RETRIEVE)
        .order_by("pk")
        .values_list("detail__stage", flat=True)
    )
    assert actions == ["requested", "finished"]


def test_a_retrieve_of_something_that_is_not_a_uid_is_refused(client, staff, node):
    client.force_login(staff)

    response = client.post(reverse("pacs-retrieve"), {"pacs": node.pk, "study_instance_uid": "1.2.x"})

    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == reverse("pacs-search")
    assert not RetrieveJob.objects.exists()


def test_the_list_of_retrievals(client, staff, node, django_assert_max_num_queries):
    for uid in ("1.2.3", "1.2.4", "1.2.5"):
        RetrieveJob.objects.create(
            pacs=node, study_instance_uid=uid, requested_by=staff, created_at=timezone.now()
        )
    client.force_login(staff)

    with django_assert_max_num_queries(12):
        response = client.get(reverse("pacs-retrievals"))

    assert response.status_code == HTTPStatus.OK
    assert all(uid in response.content.decode() for uid in ("1.2.3", "1.2.4", "1.2.5"))
    assert AuditEvent.objects.filter(action=AuditEvent.Action.QUERY, detail__list="PACS retrievals").exists()


def test_the_progress_of_a_queued_job(client, staff, node):
    job = RetrieveJob.objects.create(
        pacs=node, study_instance_uid="1.2.3", requested_by=staff, created_at=timezone.now()
    )
    client.force_login(staff)

    progress = client.get(reverse("pacs-retrieval-json", args=[job.pk])).json()

    assert progress["status"] == "queued"
    assert progress["finished"] is False
    assert (
        client.get(reverse("pacs-retrieval-json", args=[job.pk + 1000])).status_code == HTTPStatus.NOT_FOUND
    )


@pytest.mark.parametrize("name", ["pacs-search", "pacs-retrievals"])
def test_patients_are_forbidden(client, jane, name, transactional_db):
    client.force_login(jane)

    assert client.get(reverse(name)).status_code == HTTPStatus.FORBIDDEN


def test_patients_cannot_retrieve_or_follow_retrievals(client, jane, staff, node):
    job = RetrieveJob.objects.create(
        pacs=node, study_instance_uid="1.2.3", requested_by=staff, created_at=timezone.now()
    )
    client.force_login(jane)

    assert client.post(reverse("pacs-search"), {"pacs": node.pk, "patient_id": "X"}).status_code == 403
    assert (
        client.post(reverse("pacs-retrieve"), {"pacs": node.pk, "study_instance_uid": "1.2.3"}).status_code
        == 403
    )
    assert client.get(reverse("pacs-retrieval", args=[job.pk])).status_code == HTTPStatus.FORBIDDEN
    assert client.get(reverse("pacs-retrieval-json", args=[job.pk])).status_code == HTTPStatus.FORBIDDEN
    assert RetrieveJob.objects.count() == 1
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.PACS_QUERY).exists()


@pytest.mark.parametrize("name", ["pacs-search", "pacs-retrievals"])
def test_anonymous_visitors_are_sent_to_sign_in(client, name, transactional_db):
    response = client.get(reverse(name))

    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"].startswith(reverse("account_login"))


def test_the_admin_tests_the_connection_with_c_echo(client, orthanc, node):
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

    admin = User.objects.create_superuser("admin@example.com", "pw-123456789")
    TOTP.activate(admin, generate_totp_secret())
    down = PacsNode.objects.create(name="Down", ae_title="DOWN", host="127.0.0.1", port=free_port())
    client.force_login(admin)

    response = client.post(
        reverse("admin:sharing_pacsnode_changelist"),
        {"action": "test_connection", "_selected_action": [node.pk, down.pk]},
        follow=True,
    )

    shown = {m.message.split(":", 1)[0]: (m.level_tag, m.message) for m in response.context["messages"]}
    assert shown["Main PACS"][0] == "success"
    assert shown["Main PACS"][1].startswith(f"Main PACS: ORTHANC at 127.0.0.1:{node.port} answered in")
    assert shown["Main PACS"][1].endswith(" ms")
    assert shown["Down"][0] == "error"
    assert shown["Down"][1].startswith(f"Down: PACS unreachable at 127.0.0.1:{down.port}")
