from __future__ import annotations

from http import HTTPStatus

import pytest
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from sharing.models import AuditEvent, Patient, Study, User

pytestmark = pytest.mark.django_db


def make_study(patient: Patient, uid: str, *, outside: bool = False) -> Study:
    now = timezone.now()
    return Study.objects.create(
        study_instance_uid=uid,
        patient=patient,
        description=f"Study {uid}",
        number_of_instances=3,
        is_outside=outside,
        first_received_at=now,
        last_received_at=now,
    )


@pytest.fixture
def staff(client) -> User:
    user = User.objects.create_user("records@example.com", "pw-123456789", role=User.Role.RECORDS)
    TOTP.activate(user, generate_totp_secret())  # staff pages need two-factor (sharing.middleware)
    return user


@pytest.fixture
def jane() -> User:
    return User.objects.create_user("jane@example.com", "pw-123456789")


@pytest.fixture
def studies(jane):
    linked = Patient.objects.create(patient_id="MRN-1", name="LINKED^JANE", user=jane)
    stranger = Patient.objects.create(patient_id="MRN-2", name="UNKNOWN^PERSON")
    return {
        "linked": make_study(linked, "1.1"),
        "unlinked": make_study(stranger, "1.2"),
        "outside": make_study(linked, "1.3", outside=True),
    }


def test_a_patient_sees_only_their_own_studies_at_home(client, jane, studies):
    client.force_login(jane)

    response = client.get(reverse("home"))

    assert response.status_code == HTTPStatus.OK
    assert list(response.context["studies"]) == [studies["outside"], studies["linked"]]
    assert b"UNKNOWN" not in response.content


def test_anonymous_visitors_are_sent_to_sign_in(client, studies):
    for name in ("home", "unmatched-studies"):
        response = client.get(reverse(name))
        assert response.status_code == HTTPStatus.FOUND
        assert response["Location"].startswith(reverse("account_login"))


def test_records_staff_see_studies_waiting_for_a_patient(client, staff, studies):
    client.force_login(staff)

    response = client.get(reverse("unmatched-studies"))

    assert response.status_code == HTTPStatus.OK
    shown = list(response.context["page"].object_list)
    assert studies["unlinked"] in shown
    assert studies["outside"] in shown
    assert studies["linked"] not in shown
    assert b"UNKNOWN^PERSON" in response.content


def test_looking_at_the_list_is_audited(client, staff, studies):
    client.force_login(staff)

    client.get(reverse("unmatched-studies"))

    event = AuditEvent.objects.get(action=AuditEvent.Action.QUERY)
    assert event.actor_user == staff
    assert event.detail["shown"] == 2


def test_a_patient_cannot_see_the_staff_list(client, jane, studies):
    client.force_login(jane)

    response = client.get(reverse("unmatched-studies"))

    assert response.status_code == HTTPStatus.FORBIDDEN
    assert b"UNKNOWN" not in response.content
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.QUERY).exists()


def test_the_staff_list_costs_the_same_queries_whatever_its_length(client, staff):
    client.force_login(staff)
    stranger = Patient.objects.create(patient_id="MRN-9")
    make_study(stranger, "2.1")
    client.get(reverse("home"))  # the first request of a session starts its clocks (sharing.middleware)
    with CaptureQueriesContext(connection) as few:
        client.get(reverse("unmatched-studies"))
    for index in range(2, 30):
        make_study(Patient.objects.create(patient_id=f"MRN-9{index}"), f"2.{index}")
    with CaptureQueriesContext(connection) as many:
        client.get(reverse("unmatched-studies"))

    assert len(many) == len(few)
