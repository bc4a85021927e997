"""The audit trail as DICOM audit messages (PS3.15 Annex A.5, the IHE ATNA / RFC 3881 schema).

Each ``AuditEvent`` becomes one ``<AuditMessage>``. Only known fields are emitted, never ``detail``
(which is free-form and could one day hold something secret). A date range is exported as one XML
document that wraps many messages in a root ``<AuditMessages>`` element: PS3.15 defines a single
message per document, so this is a file *of* messages; a syslog sender would send each
``<AuditMessage>`` on its own.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit
from xml.etree import ElementTree as ET

from sharing.conf import app_settings
from sharing.models import AuditEvent

Action = AuditEvent.Action


@dataclass(frozen=True)
class Code:
    code: str
    meaning: str
    system: str = "DCM"


@dataclass(frozen=True)
class AtnaEvent:
    event_id: Code
    action_code: str  # EventActionCode: C(reate) R(ead) U(pdate) D(elete) E(xecute)
    type_code: Code | None = None


APPLICATION_ACTIVITY = Code("110100", "Application Activity")
AUDIT_LOG_USED = Code("110101", "Audit Log Used")
INSTANCES_ACCESSED = Code("110103", "DICOM Instances Accessed")
INSTANCES_TRANSFERRED = Code("110104", "DICOM Instances Transferred")
EXPORT = Code("110106", "Export")
IMPORT = Code("110107", "Import")
PATIENT_RECORD = Code("110110", "Patient Record")
QUERY = Code("110112", "Query")
SECURITY_ALERT = Code("110113", "Security Alert")
USER_AUTHENTICATION = Code("110114", "User Authentication")

LOGIN = Code("110122", "Login")
LOGOUT = Code("110123", "Logout")
USE_OF_RESTRICTED_FUNCTION = Code("110132", "Use of Restricted Function")
OBJECT_SECURITY_ATTRIBUTES_CHANGED = Code("110135", "Object Security Attributes Changed")
USER_SECURITY_ATTRIBUTES_CHANGED = Code("110137", "User Security Attributes Changed")

ROLE_SOURCE = Code("110153", "Source Role ID")
ROLE_DESTINATION = Code("110152", "Destination Role ID")
ROLE_APPLICATION = Code("110150", "Application")

STUDY_INSTANCE_UID = Code("110180", "Study Instance UID")
PATIENT_NUMBER = Code("2", "Patient Number", "RFC-3881")
URI = Code("12", "URI", "RFC-3881")

EVENTS: dict[str, AtnaEvent] = {
    Action.INGEST: AtnaEvent(INSTANCES_TRANSFERRED, "C"),
    Action.INGEST_CONFLICT: AtnaEvent(INSTANCES_TRANSFERRED, "C"),
    Action.STUDY_COMPLETE: AtnaEvent(INSTANCES_ACCESSED, "U"),
    Action.QUERY: AtnaEvent(QUERY, "E"),
    Action.VIEW: AtnaEvent(INSTANCES_ACCESSED, "R"),
    Action.FRAMES: AtnaEvent(INSTANCES_ACCESSED, "R"),
    Action.DOWNLOAD: AtnaEvent(EXPORT, "R"),
    Action.LOGIN: AtnaEvent(USER_AUTHENTICATION, "E", LOGIN),
    Action.LOGIN_FAILED: AtnaEvent(USER_AUTHENTICATION, "E", LOGIN),
    Action.LOGOUT: AtnaEvent(USER_AUTHENTICATION, "E", LOGOUT),
    Action.SHARE_CREATE: AtnaEvent(PATIENT_RECORD, "C"),
    Action.SHARE_OPEN: AtnaEvent(PATIENT_RECORD, "R"),
    Action.SHARE_VERIFY_FAIL: AtnaEvent(SECURITY_ALERT, "E", USE_OF_RESTRICTED_FUNCTION),
    Action.SHARE_LOCK: AtnaEvent(SECURITY_ALERT, "E", OBJECT_SECURITY_ATTRIBUTES_CHANGED),
    Action.SHARE_REVOKE: AtnaEvent(PATIENT_RECORD, "U"),
    Action.SHARE_EXTEND: AtnaEvent(PATIENT_RECORD, "U"),
    Action.SHARE_EXPIRE: AtnaEvent(PATIENT_RECORD, "U"),
    Action.AUTHORIZATION_SIGN: AtnaEvent(PATIENT_RECORD, "C"),
    Action.AUTHORIZATION_REVOKE: AtnaEvent(PATIENT_RECORD, "U"),
    Action.AUTHORIZATION_UPDATE: AtnaEvent(PATIENT_RECORD, "U"),
    Action.IDENTITY_VERIFY: AtnaEvent(PATIENT_RECORD, "U"),
    Action.PATIENT_LINK: AtnaEvent(PATIENT_RECORD, "U"),
    Action.PACS_QUERY: AtnaEvent(QUERY, "E"),
    Action.PACS_RETRIEVE: AtnaEvent(IMPORT, "C"),
    Action.RELEASE: AtnaEvent(PATIENT_RECORD, "U"),
    Action.DENY: AtnaEvent(PATIENT_RECORD, "U"),
    Action.RECONCILE: AtnaEvent(PATIENT_RECORD, "U"),
    Action.EXPORT: AtnaEvent(AUDIT_LOG_USED, "R"),
    Action.API_TOKEN_CREATE: AtnaEvent(SECURITY_ALERT, "E", USER_SECURITY_ATTRIBUTES_CHANGED),
    Action.API_TOKEN_REVOKE: AtnaEvent(SECURITY_ALERT, "E", USER_SECURITY_ATTRIBUTES_CHANGED),
    # Each request made with a token authenticates its owner anew.
    Action.API_TOKEN_USE: AtnaEvent(USER_AUTHENTICATION, "E", LOGIN),
}
# An action added later and not yet mapped still exports, as generic application activity.
UNMAPPED = AtnaEvent(APPLICATION_ACTIVITY, "E")

_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _text(value: object) -> str:
    """XML 1.0 cannot carry most control characters, even escaped."""
    return _NOT_XML.sub("\ufffd", str(value))


def atna_event_for(action: str) -> AtnaEvent:
    return EVENTS.get(action, UNMAPPED)


def audit_source_id() -> str:
    return app_settings.SCP_AE_TITLE or "LIGHTBOX"


def _code(parent: ET.Element, tag: str, code: Code) -> ET.Element:
    return ET.SubElement(
        parent, tag, {"csd-code": code.code, "codeSystemName": code.system, "originalText": code.meaning}
    )


def _datetime(value: datetime.datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(datetime.UTC)
    return value.isoformat()


def _requestor_id(event: AuditEvent) -> str:
    if event.actor_kind == AuditEvent.ActorKind.SHARE:
        # The share's id, never its token (the audit trail does not have it anyway).
        return f"share:{event.share_id}" if event.share_id else "share"
    if event.actor_kind == AuditEvent.ActorKind.SYSTEM:
        return audit_source_id()
    if event.actor_label:
        return event.actor_label
    if event.actor_user_id:
        return f"user:{event.actor_user_id}"
    return "unknown"


def audit_message(event: AuditEvent) -> ET.Element:
    """One ``<AuditMessage>``; ``event`` should come with ``patient`` selected (and ``share``)."""
    atna = atna_event_for(event.action)
    message = ET.Element("AuditMessage")
    identification = ET.SubElement(
        message,
        "EventIdentification",
        {
            "EventActionCode": atna.action_code,
            "EventDateTime": _datetime(event.occurred_at),
            "EventOutcomeIndicator": str(int(event.outcome)),
        },
    )
    _code(identification, "EventID", atna.event_id)
    if atna.type_code is not None:
        _code(identification, "EventTypeCode", atna.type_code)

    is_system = event.actor_kind == AuditEvent.ActorKind.SYSTEM
    requestor = ET.SubElement(
        message, "ActiveParticipant", {"UserID": _text(_requestor_id(event)), "UserIsRequestor": "true"}
    )
    if event.actor_kind == AuditEvent.ActorKind.SHARE and event.actor_label:
        requestor.set("UserName", _text(event.actor_label))
    if event.remote_addr:
        requestor.set("NetworkAccessPointID", _text(event.remote_addr))
        requestor.set("NetworkAccessPointTypeCode", "2")  # an IP address
    if event.action in (Action.INGEST, Action.INGEST_CONFLICT):
        _code(requestor, "RoleIDCode", ROLE_SOURCE)
    if not is_system:
        lightbox = ET.SubElement(
            message, "ActiveParticipant", {"UserID": _text(audit_source_id()), "UserIsRequestor": "false"}
        )
        ingest = event.action in (Action.INGEST, Action.INGEST_CONFLICT)
        _code(lightbox, "RoleIDCode", ROLE_DESTINATION if ingest else ROLE_APPLICATION)

    source = ET.SubElement(message, "AuditSourceIdentification", {"AuditSourceID": _text(audit_source_id())})
    site = urlsplit(app_settings.SITE_URL).hostname if app_settings.SITE_URL else None
    if site:
        source.set("AuditEnterpriseSiteID", _text(site))

    if event.study_instance_uid:
        study = ET.SubElement(
            message,
            "ParticipantObjectIdentification",
            {
                "ParticipantObjectID": _text(event.study_instance_uid),
                "ParticipantObjectTypeCode": "2",  # system object
                "ParticipantObjectTypeCodeRole": "3",  # report
            },
        )
        _code(study, "ParticipantObjectIDTypeCode", STUDY_INSTANCE_UID)
    patient = event.patient if event.patient_id is not None else None
    if patient is not None:
        patient_object = ET.SubElement(
            message,
            "ParticipantObjectIdentification",
            {
                # HL7 CX: PatientID^^^issuer
                "ParticipantObjectID": _text(f"{patient.patient_id}^^^{patient.issuer}"),
                "ParticipantObjectTypeCode": "1",  # person
                "ParticipantObjectTypeCodeRole": "1",  # patient
            },
        )
        _code(patient_object, "ParticipantObjectIDTypeCode", PATIENT_NUMBER)
        if patient.name:
            ET.SubElement(patient_object, "ParticipantObjectName").text = _text(patient.name)
    if event.share_id is not None:
        share = ET.SubElement(
            message,
            "ParticipantObjectIdentification",
            {
                "ParticipantObjectID": f"urn:lightbox:share:{event.share_id}",
                "ParticipantObjectTypeCode": "2",  # system object
                "ParticipantObjectTypeCodeRole": "13",  # security resource
            },
        )
        _code(share, "ParticipantObjectIDTypeCode", URI)
    if event.action == Action.EXPORT:
        log = ET.SubElement(
            message,
            "ParticipantObjectIdentification",
            {
                "ParticipantObjectID": "urn:lightbox:audit-trail",
                "ParticipantObjectTypeCode": "2",
                "ParticipantObjectTypeCodeRole": "13",
            },
        )
        _code(log, "ParticipantObjectIDTypeCode", URI)
        ET.SubElement(log, "ParticipantObjectName").text = "Security Audit Log"
    return message


def audit_messages_xml(events: Iterable[AuditEvent]) -> Iterator[str]:
    """A document of ``<AuditMessage>`` elements inside ``<AuditMessages>``, a message at a time."""
    yield '<?xml version="1.0" encoding="UTF-8"?>\n<AuditMessages>\n'
    for event in events:
        yield ET.tostring(audit_message(event), encoding="unicode") + "\n"
    yield "</AuditMessages>\n"
