"""The staff audit search and exports, a patient's access history, and audited sign-ins."""

from __future__ import annotations

import csv
import datetime
import io
from http import HTTPStatus
from xml.etree import ElementTree as ET

import pytest
from allauth.account.models import EmailAddress
from django.db import connection
from django.http import StreamingHttpResponse
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from sharing.models import AuditEvent, Patient, Share, Study, User
from sharing.services.audit import NO_CLIENT, Client, audit_event_record
from sharing.services.audit_chain import audit_chain_verify
from tests.support.factories import PASSWORD
from tests.support.headers import assert_strict

pytestmark = pytest.mark.django_db

FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0"
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)


def body(response) -> str:
    if isinstance(response, StreamingHttpResponse):
        return b"".join(response).decode()
    return str(response.content.decode())


def study_for(patient: Patient, uid: str, description: str) -> Study:
    now = timezone.now()
    return Study.objects.create(
        study_instance_uid=uid,
        patient=patient,
        study_date=datetime.date(2026, 1, 15),
        description=description,
        modalities="CT",
        number_of_instances=1,
        first_received_at=now,
        last_received_at=now,
    )


def share_for(owner: User, recipient: str) -> Share:
    now = timezone.now()
    return Share.objects.create(
        owner=owner,
        token_hash=f"{recipient:0>64}"[:64],
        protection=Share.Protection.NONE,
        recipient_name=recipient,
        created_at=now,
        expires_at=now + datetime.timedelta(days=7),
    )


def view(user: User, study: Study, **extra) -> AuditEvent:
    extra.setdefault("client", NO_CLIENT)
    return audit_event_record(
        action=AuditEvent.Action.VIEW,
        actor_kind=AuditEvent.ActorKind.USER,
        actor_user=user,
        patient=study.patient,
        study_instance_uid=study.study_instance_uid,
        **extra,
    )


@pytest.fixture
def janes_study(jane) -> Study:
    patient = jane.patients.get()
    patient.name = "DOE^JANE"
    patient.save()
    return study_for(patient, "1.2.826.1", "CT CHEST")


@pytest.fixture
def johns_study(john) -> Study:
    return study_for(john.patients.get(), "1.2.826.2", "MR KNEE")


# --- Staff search -------------------------------------------------------------------------------


def test_staff_search_the_trail_by_patient_user_study_action_and_date(
    client, staff, jane, john, janes_study, johns_study, time_machine
):
    time_machine.move_to(datetime.datetime(2026, 2, 1, 12, tzinfo=datetime.UTC))
    view(staff, janes_study)
    time_machine.move_to(datetime.datetime(2026, 2, 10, 12, tzinfo=datetime.UTC))
    view(staff, johns_study)
    audit_event_record(
        action=AuditEvent.Action.DOWNLOAD,
        client=NO_CLIENT,
        actor_kind=AuditEvent.ActorKind.USER,
        actor_user=jane,
        study_instance_uid=janes_study.study_instance_uid,
    )
    client.force_login(staff)
    url = reverse("audit-search")

    def shown(**params) -> list[tuple[str, str]]:
        response = client.get(url, params)
        assert response.status_code == HTTPStatus.OK
        return [(e.action, e.study_instance_uid) for e in response.context["page"].object_list]

    jane_uid, john_uid = janes_study.study_instance_uid, johns_study.study_instance_uid
    assert shown(patient="doe^jane") == [("download", jane_uid), ("view", jane_uid)]
    assert shown(patient="MRN-2002") == [("view", john_uid)]
    assert shown(user="jane@", action="download") == [("download", jane_uid)]
    assert shown(study=john_uid) == [("view", john_uid)]
    assert shown(action="view", since="2026-02-01", until="2026-02-01") == [("view", jane_uid)]
    # The searches themselves are recorded.
    assert AuditEvent.objects.filter(action=AuditEvent.Action.QUERY, actor_user=staff).count() == 5


def test_the_search_page_is_strict_and_links_exports_with_the_same_filters(client, staff, janes_study):
    view(staff, janes_study)
    client.force_login(staff)

    response = client.get(reverse("audit-search"), {"patient": "MRN-1001"})

    assert_strict(response)
    html = body(response)
    assert reverse("audit-export-csv") + "?patient=MRN-1001" in html
    assert reverse("audit-export-xml") + "?patient=MRN-1001" in html
    assert janes_study.study_instance_uid in html


def test_a_date_range_backwards_is_an_error_not_a_search(client, staff):
    client.force_login(staff)
    response = client.get(reverse("audit-search"), {"since": "2026-02-02", "until": "2026-02-01"})
    assert response.status_code == HTTPStatus.OK
    assert response.context["page"] is None
    assert "The start date is after the end date." in body(response)
    assert client.get(reverse("audit-export-csv"), {"since": "x"}).status_code == HTTPStatus.BAD_REQUEST


@pytest.mark.parametrize("name", ["audit-search", "audit-export-csv", "audit-export-xml"])
def test_patients_may_not_read_the_trail(client, jane, name):
    client.force_login(jane)
    assert client.get(reverse(name)).status_code == HTTPStatus.FORBIDDEN
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.EXPORT).exists()


@pytest.mark.parametrize("name", ["audit-search", "audit-export-csv", "audit-export-xml", "access-history"])
def test_anonymous_visitors_are_sent_to_sign_in(client, name):
    response = client.get(reverse(name))
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"].startswith(reverse("account_login"))


def test_the_csv_export_streams_the_filtered_events_with_formulas_defused(client, staff, jane, janes_study):
    for label in ('=HYPERLINK("http://evil")', "+1", "-2", "@SUM(A1)", "plain@example.com"):
        audit_event_record(
            action=AuditEvent.Action.VIEW,
            client=NO_CLIENT,
            actor_kind=AuditEvent.ActorKind.PEER,
            actor_label=label,
            patient=janes_study.patient,
            study_instance_uid=janes_study.study_instance_uid,
        )
    audit_event_record(
        action=AuditEvent.Action.LOGIN,
        client=NO_CLIENT,
        actor_kind=AuditEvent.ActorKind.USER,
        actor_user=jane,
    )
    client.force_login(staff)

    response = client.get(reverse("audit-export-csv"), {"patient": "MRN-1001"})

    assert response.status_code == HTTPStatus.OK
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith("attachment;")
    rows = list(csv.DictReader(io.StringIO(body(response))))
    assert [row["actor"] for row in rows] == [
        '\'=HYPERLINK("http://evil")',
        "'+1",
        "'-2",
        "'@SUM(A1)",
        "plain@example.com",
    ]
    assert {row["patient_id"] for row in rows} == {"MRN-1001^^^GENERAL"}
    export = AuditEvent.objects.get(action=AuditEvent.Action.EXPORT)
    assert export.actor_user == staff
    assert export.detail == {"format": "csv", "patient": "MRN-1001"}
    assert audit_chain_verify().intact


def test_the_xml_export_is_a_file_of_dicom_audit_messages(client, staff, jane, janes_study):
    view(staff, janes_study, client=Client(address="10.0.0.9"))
    audit_event_record(
        action=AuditEvent.Action.LOGIN,
        client=NO_CLIENT,
        actor_kind=AuditEvent.ActorKind.USER,
        actor_user=jane,
    )
    client.force_login(staff)
    today = timezone.localdate().isoformat()

    response = client.get(reverse("audit-export-xml"), {"since": today, "until": today})

    assert response["Content-Type"].startswith("application/xml")
    root = ET.fromstring(body(response).encode())
    assert root.tag == "AuditMessages"
    event_ids = [m.find("EventIdentification/EventID").get("csd-code") for m in root]  # type: ignore[union-attr]
    # The view, jane's sign-in, the staff sign-in (force_login), and this export itself.
    assert event_ids == ["110103", "110114", "110114", "110101"]
    study_view = root[0]
    assert study_view.find("ActiveParticipant").get("UserID") == staff.email  # type: ignore[union-attr]
    assert {o.get("ParticipantObjectID") for o in study_view.findall("ParticipantObjectIdentification")} == {
        janes_study.study_instance_uid,
        "MRN-1001^^^GENERAL",
    }
    assert AuditEvent.objects.filter(action=AuditEvent.Action.EXPORT, detail__format="xml").count() == 1


# --- A patient's access history -----------------------------------------------------------------


def test_access_history_names_staff_who_saw_my_study_and_my_share_recipients(
    client, jane, staff, janes_study
):
    view(staff, janes_study, client=Client(address="10.20.30.40", user_agent=FIREFOX))
    share = share_for(jane, "Dr Smith")
    audit_event_record(
        action=AuditEvent.Action.SHARE_OPEN,
        actor_kind=AuditEvent.ActorKind.SHARE,
        actor_label=share.label,
        share=share,
        client=Client(address="198.51.100.7", user_agent=SAFARI_IPHONE),
    )
    audit_event_record(
        action=AuditEvent.Action.INGEST,
        client=NO_CLIENT,
        actor_kind=AuditEvent.ActorKind.PEER,
        actor_label="PACS@10.0.0.5",
        study_instance_uid=janes_study.study_instance_uid,
    )
    client.force_login(jane)

    response = client.get(reverse("access-history"))

    assert response.status_code == HTTPStatus.OK
    assert_strict(response)
    rows = response.context["rows"]
    by_who = {row.who: row for row in rows}
    assert set(by_who) == {"You", "Share: Dr Smith", "Hospital system", staff.email}
    staff_view = by_who[staff.email]
    assert (staff_view.what, staff_view.remote_addr, staff_view.browser) == (
        "Viewed",
        "10.20.30.40",
        "Firefox on Windows",
    )
    assert staff_view.study.description == "CT CHEST"
    assert by_who["Share: Dr Smith"].browser == "Safari on iOS"
    assert by_who["You"].what == "Signed in"
    html = body(response)
    assert "CT CHEST" in html
    assert "15 Jan 2026" in html


def test_access_history_does_not_show_another_patients_events(
    client, jane, john, staff, janes_study, johns_study
):
    view(staff, johns_study)
    share_for(john, "Dr Who")
    audit_event_record(
        action=AuditEvent.Action.SHARE_OPEN,
        client=NO_CLIENT,
        actor_kind=AuditEvent.ActorKind.SHARE,
        share=Share.objects.get(owner=john),
    )
    view(john, johns_study)
    client.force_login(jane)

    rows = client.get(reverse("access-history")).context["rows"]

    assert [(row.who, row.what) for row in rows] == [("You", "Signed in")]


def test_access_history_filters_by_kind(client, jane, staff, janes_study):
    view(staff, janes_study)
    audit_event_record(
        action=AuditEvent.Action.SHARE_OPEN,
        client=NO_CLIENT,
        actor_kind=AuditEvent.ActorKind.SHARE,
        share=share_for(jane, "X"),
    )
    client.force_login(jane)

    def whos(kind: str) -> list[str]:
        return [row.who for row in client.get(reverse("access-history"), {"kind": kind}).context["rows"]]

    assert whos("staff") == [staff.email]
    assert whos("shares") == ["Share: X"]
    assert whos("you") == ["You"]
    assert len(whos("all")) == 3
    assert len(whos("nonsense")) == 3


def test_access_history_pages_cost_the_same_number_of_queries(client, jane, staff, janes_study):
    client.force_login(jane)
    view(staff, janes_study)
    client.get(reverse("access-history"))  # the first request of a session also saves the session
    with CaptureQueriesContext(connection) as few:
        client.get(reverse("access-history"))
    patient = jane.patients.get()
    for n in range(30):
        study = study_for(patient, f"1.2.826.9.{n}", f"Study {n}")
        view(staff, study, client=Client(user_agent=FIREFOX))
        audit_event_record(
            action=AuditEvent.Action.SHARE_OPEN,
            client=NO_CLIENT,
            actor_kind=AuditEvent.ActorKind.SHARE,
            share=share_for(jane, f"R{n}"),
        )
    with CaptureQueriesContext(connection) as many:
        response = client.get(reverse("access-history"))
    assert len(response.context["rows"]) == 50
    assert len(many) == len(few)


def test_the_nav_links_access_history_for_everyone_and_the_trail_for_staff(client, jane, staff):
    client.force_login(jane)
    html = body(client.get(reverse("home")))
    assert reverse("access-history") in html
    assert reverse("audit-search") not in html
    client.force_login(staff)
    html = body(client.get(reverse("audit-search")))
    assert reverse("access-history") in html
    assert reverse("audit-search") in html


# --- Signing in and out -------------------------------------------------------------------------


def test_signing_in_and_out_is_audited(client, jane):
    EmailAddress.objects.create(user=jane, email=jane.email, primary=True, verified=True)
    response = client.post(
        reverse("account_login"), {"login": jane.email, "password": PASSWORD}, HTTP_USER_AGENT=FIREFOX
    )
    assert response.status_code == HTTPStatus.FOUND
    client.post(reverse("account_logout"))

    events = list(AuditEvent.objects.filter(actor_user=jane).order_by("pk"))
    assert [e.action for e in events] == [AuditEvent.Action.LOGIN, AuditEvent.Action.LOGOUT]
    assert events[0].user_agent == FIREFOX
    assert events[0].remote_addr == "127.0.0.1"


def test_a_failed_sign_in_keeps_the_address_tried_but_never_the_password(client, jane):
    client.post(reverse("account_login"), {"login": "JANE@example.com", "password": "wrong-secret-1"})
    client.post(reverse("account_login"), {"login": "wrong-secret-2", "password": "x"})

    events = list(AuditEvent.objects.filter(action=AuditEvent.Action.LOGIN_FAILED).order_by("pk"))
    assert events, "failed sign-ins are audited"
    assert events[0].detail == {"email": "jane@example.com"}
    assert events[0].actor_user is None
    assert events[0].outcome == AuditEvent.Outcome.MINOR_FAILURE
    everything = repr([(e.actor_label, e.detail, e.user_agent) for e in AuditEvent.objects.all()])
    assert "wrong-secret" not in everything
