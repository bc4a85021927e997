"""STOW-RS (PS3.18 §10.5): storing the parts of a multipart/related body, and the response.

Every part goes to ``instance_receive``, the receiver the Storage SCP uses; one INGEST audit
event is written per study at the end of the request, as the SCP does per association.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.utils.http import parse_header_parameters

from sharing.conf import app_settings
from sharing.dicom.errors import DicomInputError
from sharing.dicom.header import read_header
from sharing.dicom.part10 import Part10Identity, part10_identity
from sharing.models import Study, User
from sharing.services.audit import NO_CLIENT, Client
from sharing.services.multipart import (
    DICOM_MEDIA_TYPE,
    BodyPart,
    MultipartError,
    multipart_boundary,
    multipart_parts,
)
from sharing.services.receiving import (
    ReceiveOutcome,
    ReceiveResult,
    Sender,
    count_outcomes,
    ingest_audit_record,
    instance_receive,
)

logger = logging.getLogger(__name__)


DICOM_JSON_MEDIA_TYPE = "application/dicom+json"


@dataclass(frozen=True)
class StowItem:
    """What became of one part, and which instance it was (even when it could not be stored)."""

    result: ReceiveResult
    identity: Part10Identity = field(default_factory=Part10Identity)

    @property
    def sop_class_uid(self) -> str:
        return self.result.header.sop_class_uid if self.result.header else self.identity.sop_class_uid

    @property
    def sop_instance_uid(self) -> str:
        return self.result.header.sop_instance_uid if self.result.header else self.identity.sop_instance_uid


@dataclass(frozen=True)
class StowResponse:
    status: int
    dataset: dict[str, Any]


def stow_receive(
    *,
    read: Callable[[int], bytes],
    content_type: str,
    user: User,
    study_instance_uid: str | None = None,
    client: Client = NO_CLIENT,
) -> list[StowItem]:
    """Store each application/dicom part of a STOW-RS body; one item per part, in order.

    Raises UnsupportedMediaType, or MultipartError when no part could be read at all. A body
    that breaks after some parts ends the list with one UNREADABLE (or UNAVAILABLE) item.
    """
    boundary = multipart_boundary(content_type)
    sender = Sender(source=Study.Source.STOW, label=user.email, user=user, client=client)
    items: list[StowItem] = []
    parts = multipart_parts(
        read=read,
        boundary=boundary,
        directory=app_settings.TEMP_DIR,
        max_part_bytes=app_settings.UPLOAD_MAX_BYTES,
    )
    try:
        with contextlib.closing(parts):
            for part in parts:
                items.append(_stow_part(part=part, sender=sender, study_instance_uid=study_instance_uid))
    except MultipartError as exc:
        if not items:
            raise
        items.append(StowItem(ReceiveResult(ReceiveOutcome.UNREADABLE, str(exc))))
    except OSError as exc:
        logger.warning("temporary storage failed during STOW-RS: %s", exc.strerror)
        items.append(StowItem(ReceiveResult(ReceiveOutcome.UNAVAILABLE, "temporary storage unavailable")))
    finally:
        ingest_audit_record(counts=count_outcomes(item.result for item in items), sender=sender)
    if not items:
        raise MultipartError("the body holds no part")
    return items


def _stow_part(*, part: BodyPart, sender: Sender, study_instance_uid: str | None) -> StowItem:
    media_type = parse_header_parameters(part.content_type)[0] if part.content_type else DICOM_MEDIA_TYPE
    if media_type != DICOM_MEDIA_TYPE:
        reason = f"part is {media_type}, not {DICOM_MEDIA_TYPE}"
        return StowItem(ReceiveResult(ReceiveOutcome.UNREADABLE, reason))
    if study_instance_uid is not None:
        try:
            header = read_header(part.path)
        except DicomInputError:
            header = None  # instance_receive below reports what is wrong with it
        if header is not None and header.study_instance_uid != study_instance_uid:
            reason = "StudyInstanceUID does not match the request URL"
            return StowItem(ReceiveResult(ReceiveOutcome.INVALID, reason, header=header))
    result = instance_receive(path=part.path, sender=sender)
    if result.header is None:
        return StowItem(result, part10_identity(part.path))
    return StowItem(result)


def stow_response(*, items: list[StowItem], studies_url: str) -> StowResponse:
    """The PS3.18 Store Instances response as DICOM JSON, and its HTTP status.

    Failure reasons are the DIMSE statuses the Storage SCP answers. A part whose UIDs could not
    be read is still listed in FailedSOPSequence, with empty UIDs: the table has no other place.
    """
    stored = [item.result.header for item in items if item.result.outcome.is_success and item.result.header]
    failed = [item for item in items if not item.result.outcome.is_success]
    dataset: dict[str, Any] = {}
    study_uids = {header.study_instance_uid for header in stored}
    if len(study_uids) == 1:
        dataset["00081190"] = _dicom_json("UR", f"{studies_url}/{study_uids.pop()}")  # RetrieveURL
    if failed:
        dataset["00081198"] = {  # FailedSOPSequence
            "vr": "SQ",
            "Value": [
                {
                    "00081150": _dicom_json("UI", item.sop_class_uid),
                    "00081155": _dicom_json("UI", item.sop_instance_uid),
                    "00081197": _dicom_json("US", item.result.outcome.dimse_status),  # FailureReason
                }
                for item in failed
            ],
        }
    if stored:
        dataset["00081199"] = {  # ReferencedSOPSequence
            "vr": "SQ",
            "Value": [
                {
                    "00081150": _dicom_json("UI", header.sop_class_uid),
                    "00081155": _dicom_json("UI", header.sop_instance_uid),
                    "00081190": _dicom_json(
                        "UR",
                        f"{studies_url}/{header.study_instance_uid}/series/"
                        f"{header.series_instance_uid}/instances/{header.sop_instance_uid}",
                    ),
                }
                for header in stored
            ],
        }
    status = 200 if not failed else 202 if stored else 409
    return StowResponse(status=status, dataset=dataset)


def _dicom_json(vr: str, value: str | int) -> dict[str, Any]:
    # PS3.18 F.2.2: an empty value is an attribute without "Value".
    return {"vr": vr, "Value": [value]} if value != "" else {"vr": vr}
