"""The audit trail as DICOM audit messages (PS3.15 A.5), and ``manage.py export_audit``."""

from __future__ import annotations

import datetime
from io import StringIO
from xml.etree import ElementTree as ET

import pytest
from django.core.management import call_command
from django.utils import timezone

from sharing.models import AuditEvent, Patient
from sharing.services.atna import EVENTS, audit_message, audit_messages_xml
from sharing.services.audit import NO_CLIENT, Client, audit_event_record
from tests.support.factories import patient_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def jane_patient() -> Patient:
    patient = patient_user("jane@example.com", "MRN-1001").patients.get()
    patient.name = "DOE^JANE"
    patient.save()
    return patient


def assert_valid_message(message: ET.Element) -> None:
    """What PS3.15 A.5.1 requires of every message."""
    assert message.tag == "AuditMessage"
    identification = message.find("EventIdentification")
    assert identification is not None
    assert identification.get("EventActionCode") in {"C", "R", "U", "D", "E"}
    assert datetime.datetime.fromisoformat(identification.get("EventDateTime", ""))
    assert identification.get("EventOutcomeIndicator") in {"0", "4", "8", "12"}
    event_id = identification.find("EventID")
    assert event_id is not None
    assert event_id.get("csd-code")
    assert event_id.get("codeSystemName") == "DCM"
    assert event_id.get("originalText")
    participants = message.findall("ActiveParticipant")
    assert participants
    assert all(p.get("UserID") and p.get("UserIsRequestor") in {"true", "false"} for p in participants)
    assert [p.get("UserIsRequestor") for p in participants].count("true") == 1
    source = message.find("AuditSourceIdentification")
    assert source is not None
    assert source.get("AuditSourceID")
    for obj in message.findall("ParticipantObjectIdentification"):
        assert obj.get("ParticipantObjectID")
        assert obj.get("ParticipantObjectTypeCode") in {"1", "2", "3", "4"}
        assert obj.find("ParticipantObjectIDTypeCode") is not None
    # Element order of the schema: event, participants, source, objects.
    tags = [child.tag for child in message]
    assert tags == sorted(
        tags,
        key=[
            "EventIdentification",
            "ActiveParticipant",
            "AuditSourceIdentification",
            "ParticipantObjectIdentification",
        ].index,
    )


def objects_by_type(message: ET.Element) -> dict[str, ET.Element]:
    return {
        o.get("ParticipantObjectTypeCode", ""): o for o in message.findall("ParticipantObjectIdentification")
    }


def test_every_action_has_a_dicom_event():
    assert set(EVENTS) == set(AuditEvent.Action.values)


def test_a_study_view_is_an_instances_accessed_message_with_study_and_patient(jane_patient):
    event = audit_event_record(
        action=AuditEvent.Action.VIEW,
        actor_kind=AuditEvent.ActorKind.USER,
        actor_user=jane_patient.user,
        client=Client(address="10.1.2.3"),
        patient=jane_patient,
        study_instance_uid="1.2.840.1",
        detail={"secret": "never-exported"},
    )
    message = ET.fromstring(ET.tostring(audit_message(event)))

    assert_valid_message(message)
    identification = message.find("EventIdentification")
    assert identification is not None
    assert identification.get("EventActionCode") == "R"
    assert identification.find("EventID").get("csd-code") == "110103"  # type: ignore[union-attr]
    requestor = message.find("ActiveParticipant[@UserIsRequestor='true']")
    assert requestor is not None
    assert requestor.get("UserID") == "jane@example.com"
    assert requestor.get("NetworkAccessPointID") == "10.1.2.3"
    assert requestor.get("NetworkAccessPointTypeCode") == "2"
    objects = objects_by_type(message)
    study, patient = objects["2"], objects["1"]
    assert study.get("ParticipantObjectID") == "1.2.840.1"
    assert study.get("ParticipantObjectTypeCodeRole") == "3"
    assert study.find("ParticipantObjectIDTypeCode").attrib == {  # type: ignore[union-attr]
        "csd-code": "110180",
        "codeSystemName": "DCM",
        "originalText": "Study Instance UID",
    }
    assert patient.get("ParticipantObjectID") == "MRN-1001^^^GENERAL"
    assert patient.get("ParticipantObjectTypeCodeRole") == "1"
    assert patient.find("ParticipantObjectIDTypeCode").get("csd-code") == "2"  # type: ignore[union-attr]
    assert patient.findtext("ParticipantObjectName") == "DOE^JANE"
    assert b"never-exported" not in ET.tostring(message)


@pytest.mark.parametrize(
    ("action", "event_id", "type_code"),
    [
        (AuditEvent.Action.LOGIN, "110114", "110122"),
        (AuditEvent.Action.LOGIN_FAILED, "110114", "110122"),
        (AuditEvent.Action.LOGOUT, "110114", "110123"),
        (AuditEvent.Action.INGEST, "110104", None),
        (AuditEvent.Action.DOWNLOAD, "110106", None),
        (AuditEvent.Action.QUERY, "110112", None),
        (AuditEvent.Action.EXPORT, "110101", None),
        (AuditEvent.Action.SHARE_LOCK, "110113", "110135"),
    ],
)
def test_actions_map_to_their_dicom_events(action, event_id, type_code):
    event = audit_event_record(
        action=action, client=NO_CLIENT, actor_kind=AuditEvent.ActorKind.PEER, actor_label="PACS@10.0.0.5"
    )
    message = audit_message(event)
    assert_valid_message(message)
    assert message.find("EventIdentification/EventID").get("csd-code") == event_id  # type: ignore[union-attr]
    type_element = message.find("EventIdentification/EventTypeCode")
    assert (type_element.get("csd-code") if type_element is not None else None) == type_code


def test_a_system_event_has_lightbox_as_its_only_participant():
    event = audit_event_record(
        action=AuditEvent.Action.STUDY_COMPLETE, client=NO_CLIENT, actor_kind=AuditEvent.ActorKind.SYSTEM
    )
    message = audit_message(event)
    assert_valid_message(message)
    assert len(message.findall("ActiveParticipant")) == 1


def test_a_file_of_messages_is_well_formed_and_escapes_hostile_text(jane_patient):
    hostile = 'a"<b>&\x01</AuditMessage>'
    for action in (AuditEvent.Action.VIEW, AuditEvent.Action.LOGIN_FAILED, AuditEvent.Action.SHARE_OPEN):
        audit_event_record(
            action=action,
            client=NO_CLIENT,
            actor_kind=AuditEvent.ActorKind.USER,
            actor_label=hostile,
            patient=jane_patient,
            study_instance_uid="1.2.3",
        )
    document = "".join(audit_messages_xml(AuditEvent.objects.select_related("patient").order_by("pk")))

    root = ET.fromstring(document.encode())

    assert root.tag == "AuditMessages"
    messages = root.findall("AuditMessage")
    assert len(messages) == 3
    for message in messages:
        assert_valid_message(message)
        assert message.find("ActiveParticipant").get("UserID") == 'a"<b>&\ufffd</AuditMessage>'  # type: ignore[union-attr]


def test_export_audit_writes_the_days_asked_for(tmp_path, jane_patient, time_machine):
    time_machine.move_to(datetime.datetime(2026, 3, 1, 12, tzinfo=datetime.UTC))
    audit_event_record(
        action=AuditEvent.Action.VIEW,
        client=NO_CLIENT,
        actor_kind=AuditEvent.ActorKind.USER,
        actor_label="early@example.com",
    )
    time_machine.move_to(datetime.datetime(2026, 3, 5, 12, tzinfo=datetime.UTC))
    audit_event_record(
        action=AuditEvent.Action.VIEW,
        client=NO_CLIENT,
        actor_kind=AuditEvent.ActorKind.USER,
        actor_label="inside@example.com",
    )
    time_machine.move_to(datetime.datetime(2026, 3, 9, 12, tzinfo=datetime.UTC))
    output = tmp_path / "audit.xml"

    call_command("export_audit", "--since", "2026-03-04", "--until", "2026-03-06", "-o", str(output))

    root = ET.parse(output).getroot()
    users = [m.find("ActiveParticipant").get("UserID") for m in root.findall("AuditMessage")]  # type: ignore[union-attr]
    assert users == ["inside@example.com"]
    export = AuditEvent.objects.get(action=AuditEvent.Action.EXPORT)
    assert export.actor_kind == AuditEvent.ActorKind.SYSTEM
    assert export.detail == {"format": "xml", "since": "2026-03-04", "until": "2026-03-06"}


def test_export_audit_writes_csv_to_standard_output():
    audit_event_record(
        action=AuditEvent.Action.VIEW,
        client=NO_CLIENT,
        actor_kind=AuditEvent.ActorKind.USER,
        actor_label="=cmd|calc",
    )
    today = timezone.localdate().isoformat()
    out = StringIO()

    call_command("export_audit", "--since", today, "--until", today, "--format", "csv", stdout=out)

    lines = out.getvalue().splitlines()
    assert lines[0].startswith("id,occurred_at,action")
    assert "'=cmd|calc" in lines[1]
