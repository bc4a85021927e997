"""Query/retrieve SCU: C-ECHO, Study Root C-FIND and C-MOVE against a PACS node.

The rest of Lightbox sees plain values: a :class:`DicomNode` goes in; :class:`EchoResult`,
:class:`StudyMatch` and :class:`MoveResult` come out; failures to reach or understand the PACS are
:class:`PacsError` (or a failed :class:`MoveResult`), never a pynetdicom or pydicom exception.
Lightbox calls with its own AE title (``LIGHTBOX_SCP_AE_TITLE``), the one a PACS knows it by.
"""

from __future__ import annotations

import datetime
import enum
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from sharing.conf import app_settings


@dataclass(frozen=True)
class DicomNode:
    ae_title: str
    host: str
    port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


class PacsError(Exception):
    """The PACS could not be reached, refused, or answered a failure; the text says which."""


class PacsUnreachable(PacsError):
    pass


class CriteriaError(ValueError):
    """A match value that cannot be sent: the text names the field and what is wrong."""


@dataclass(frozen=True)
class EchoResult:
    ok: bool
    status: int | None
    message: str
    round_trip_ms: float | None


@dataclass(frozen=True)
class StudyMatch:
    study_instance_uid: str
    study_date: datetime.date | None
    study_time: str
    description: str
    modalities: tuple[str, ...]
    accession_number: str
    patient_id: str
    issuer: str
    patient_name: str
    birth_date: datetime.date | None
    sex: str
    number_of_series: int | None
    number_of_instances: int | None


@dataclass(frozen=True)
class MoveProgress:
    remaining: int | None
    completed: int
    failed: int
    warning: int


class MoveOutcome(enum.StrEnum):
    SUCCESS = "success"
    PARTIAL = "partial"
    FAILED = "failed"


@dataclass(frozen=True)
class MoveResult:
    outcome: MoveOutcome
    status: int | None
    message: str
    completed: int
    failed: int
    warning: int
    remaining: int | None = None


# --- Association ---------------------------------------------------------------------------------


def _application_entity(*contexts: str) -> AE:
    ae = AE(ae_title=app_settings.SCP_AE_TITLE)
    timeout = app_settings.PACS_TIMEOUT
    ae.connection_timeout = timeout
    ae.acse_timeout = timeout
    ae.dimse_timeout = timeout
    ae.network_timeout = timeout
    for context in contexts:
        ae.add_requested_context(context)
    return ae


def _unreachable(node: DicomNode, assoc: Association) -> PacsUnreachable:
    if assoc.is_rejected:
        why = (
            "it rejected the association (is Lightbox's AE title registered there, and the called AE right?)"
        )
    elif assoc.is_aborted:
        why = "the connection was refused or aborted"
    else:
        why = "no association could be established"
    return PacsUnreachable(f"PACS unreachable at {node.address} ({node.ae_title}): {why}")


@contextmanager
def _associated(node: DicomNode, *contexts: str) -> Iterator[Association]:
    ae = _application_entity(*contexts)
    try:
        assoc = ae.associate(node.host, node.port, ae_title=node.ae_title)
    except (OSError, RuntimeError, ValueError) as exc:
        raise PacsUnreachable(f"PACS unreachable at {node.address} ({node.ae_title}): {exc}") from exc
    if not assoc.is_established:
        raise _unreachable(node, assoc)
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()
        ae.shutdown()


def _status_of(response: Dataset | None) -> int | None:
    if response is None or "Status" not in response:
        return None
    return int(response.Status)


# --- C-ECHO --------------------------------------------------------------------------------------


def echo(node: DicomNode) -> EchoResult:
    started = time.perf_counter()
    try:
        with _associated(node, Verification) as assoc:
            status = _status_of(assoc.send_c_echo())
    except PacsError as exc:
        return EchoResult(ok=False, status=None, message=str(exc), round_trip_ms=None)
    elapsed = round((time.perf_counter() - started) * 1000, 1)
    if status is None:
        return EchoResult(
            False, None, f"{node.address} sent no answer to C-ECHO (timed out or aborted)", None
        )
    if status != 0x0000:
        return EchoResult(False, status, f"{node.ae_title} answered C-ECHO with status 0x{status:04X}", None)
    return EchoResult(True, status, f"{node.ae_title} at {node.address} answered in {elapsed:g} ms", elapsed)


# --- C-FIND --------------------------------------------------------------------------------------

# Most characters a value of each VR may hold (PS3.5 §6.2); PN per component group.
_MAX_LENGTH = {"LO": 64, "PN": 64, "CS": 16}
_CS = re.compile(r"^[A-Z0-9_ ]*$")


def _text_criterion(label: str, value: str, vr: str) -> str:
    value = value.strip()
    if "\\" in value:
        raise CriteriaError(f"{label} must not contain a backslash")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise CriteriaError(f"{label} must not contain control characters")
    if len(value) > _MAX_LENGTH[vr]:
        raise CriteriaError(f"{label} is longer than {_MAX_LENGTH[vr]} characters")
    return value


def _modalities_criterion(value: str) -> str:
    """``"CT, MR"`` → ``CT\\MR``: each code validated, then joined into one multi-valued key."""
    codes = [code for code in re.split(r"[,\s]+", value.strip().upper()) if code]
    for code in codes:
        if len(code) > _MAX_LENGTH["CS"] or not _CS.match(code):
            raise CriteriaError(f"modality {code!r} is not a DICOM modality code such as CT or MR")
    return "\\".join(codes)


def _date_range(date_from: datetime.date | None, date_to: datetime.date | None) -> str:
    if date_from and date_to and date_from > date_to:
        raise CriteriaError("the date range ends before it starts")
    if date_from is None and date_to is None:
        return ""
    start = date_from.strftime("%Y%m%d") if date_from else ""
    end = date_to.strftime("%Y%m%d") if date_to else ""
    return start if start == end else f"{start}-{end}"


def study_query(
    *,
    patient_id: str = "",
    patient_name: str = "",
    birth_date: datetime.date | None = None,
    date_from: datetime.date | None = None,
    date_to: datetime.date | None = None,
    modality: str = "",
) -> Dataset:
    """The C-FIND identifier: validated match keys plus the return keys a StudyMatch holds.

    ``*`` and ``?`` keep their C-FIND wildcard meaning in the patient ID and name.
    """
    ds = Dataset()
    name = _text_criterion("patient name", patient_name, "PN")
    pid = _text_criterion("patient ID", patient_id, "LO")
    if not name.isascii() or not pid.isascii():
        ds.SpecificCharacterSet = "ISO_IR 192"
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = ""
    ds.StudyDate = _date_range(date_from, date_to)
    ds.StudyTime = ""
    ds.StudyDescription = ""
    ds.ModalitiesInStudy = _modalities_criterion(modality)
    ds.AccessionNumber = ""
    ds.PatientID = pid
    ds.IssuerOfPatientID = ""
    ds.PatientName = name
    ds.PatientBirthDate = birth_date.strftime("%Y%m%d") if birth_date else ""
    ds.PatientSex = ""
    ds.NumberOfStudyRelatedSeries = None
    ds.NumberOfStudyRelatedInstances = None
    return ds


def _date(value: object) -> datetime.date | None:
    text = str(value or "").strip()
    try:
        return datetime.datetime.strptime(text[:8], "%Y%m%d").date() if text else None
    except ValueError:
        return None


def _int(value: object) -> int | None:
    try:
        return int(str(value)) if value not in (None, "") else None
    except ValueError:
        return None


def _str(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword, "")
    return "" if value is None else str(value).strip()


def readable_name(value: str) -> str:
    """``DOE^JANE^^DR`` → ``DOE JANE DR``: the alphabetic group, carets as spaces."""
    alphabetic = value.split("=", 1)[0]
    return " ".join(part for part in alphabetic.split("^") if part.strip())


def _modalities(ds: Dataset) -> tuple[str, ...]:
    value = ds.get("ModalitiesInStudy", "")
    values = value if isinstance(value, list | tuple) else ([value] if value else [])
    return tuple(sorted({str(v).strip() for v in values if str(v).strip()}))


def study_match(ds: Dataset) -> StudyMatch:
    return StudyMatch(
        study_instance_uid=_str(ds, "StudyInstanceUID"),
        study_date=_date(ds.get("StudyDate")),
        study_time=_str(ds, "StudyTime"),
        description=_str(ds, "StudyDescription"),
        modalities=_modalities(ds),
        accession_number=_str(ds, "AccessionNumber"),
        patient_id=_str(ds, "PatientID"),
        issuer=_str(ds, "IssuerOfPatientID"),
        patient_name=readable_name(_str(ds, "PatientName")),
        birth_date=_date(ds.get("PatientBirthDate")),
        sex=_str(ds, "PatientSex"),
        number_of_series=_int(ds.get("NumberOfStudyRelatedSeries")),
        number_of_instances=_int(ds.get("NumberOfStudyRelatedInstances")),
    )


def find_studies(
    node: DicomNode,
    *,
    patient_id: str = "",
    patient_name: str = "",
    birth_date: datetime.date | None = None,
    date_from: datetime.date | None = None,
    date_to: datetime.date | None = None,
    modality: str = "",
    limit: int = 500,
) -> list[StudyMatch]:
    """Study Root C-FIND at STUDY level: at most ``limit`` matches (then the query is abandoned).

    Raises CriteriaError for a value that cannot be sent and PacsError when the PACS cannot be
    reached or answers a failure.
    """
    query = study_query(
        patient_id=patient_id,
        patient_name=patient_name,
        birth_date=birth_date,
        date_from=date_from,
        date_to=date_to,
        modality=modality,
    )
    matches: list[StudyMatch] = []
    with _associated(node, StudyRootQueryRetrieveInformationModelFind) as assoc:
        for response, identifier in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind):
            status = _status_of(response)
            if status is None:
                raise PacsError(f"{node.ae_title} at {node.address} stopped answering the search")
            if status in (0xFF00, 0xFF01):
                if identifier is not None:
                    matches.append(study_match(identifier))
                if len(matches) >= limit:
                    assoc.abort()  # no use reading the rest: a C-CANCEL would still wait for it
                    break
                continue
            if status == 0x0000:
                break
            raise PacsError(f"{node.ae_title} refused the search: {find_status_meaning(status)}")
    return matches


def find_status_meaning(status: int) -> str:
    if status == 0xA700:
        return "out of resources (0xA700)"
    if status == 0xA900:
        return "the query does not match the information model (0xA900)"
    if status == 0xFE00:
        return "the search was cancelled (0xFE00)"
    if 0xC000 <= status <= 0xCFFF:
        return f"unable to process (0x{status:04X})"
    return f"status 0x{status:04X}"


# --- C-MOVE --------------------------------------------------------------------------------------


def move_status_meaning(status: int, destination_ae: str) -> str:
    if status == 0xA801:
        return (
            f"Move destination unknown (0xA801): register Lightbox's AE title {destination_ae} "
            "with its host and port in the PACS"
        )
    if status == 0xA701:
        return "The PACS is out of resources: unable to calculate the number of matches (0xA701)"
    if status == 0xA702:
        return "The PACS is out of resources: unable to perform the sub-operations (0xA702)"
    if status == 0xA900:
        return "The request does not match the information model (0xA900)"
    if status == 0xFE00:
        return "The retrieve was cancelled (0xFE00)"
    if status == 0x0122:
        return "The PACS does not support study-level retrieve (0x0122)"
    if 0xC000 <= status <= 0xCFFF:
        # Orthanc, among others, answers this rather than 0xA801 for an unknown destination.
        return (
            f"The PACS was unable to process the retrieve (0x{status:04X}): check that it holds "
            f"this study and knows Lightbox's AE title {destination_ae} as a move destination"
        )
    return f"The PACS answered status 0x{status:04X}"


def _counter(identifier: Dataset | None, response: Dataset, keyword: str) -> int | None:
    for source in (response, identifier):
        if source is not None and keyword in source:
            return _int(source.get(keyword))
    return None


def move_study(
    node: DicomNode,
    *,
    study_instance_uid: str,
    destination_ae: str,
    on_progress: Callable[[MoveProgress], None],
) -> MoveResult:
    """Study Root C-MOVE of one study to ``destination_ae``; never raises for PACS trouble."""
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = study_instance_uid
    progress = MoveProgress(remaining=None, completed=0, failed=0, warning=0)
    total = 0
    try:
        with _associated(node, StudyRootQueryRetrieveInformationModelMove) as assoc:
            responses = assoc.send_c_move(query, destination_ae, StudyRootQueryRetrieveInformationModelMove)
            for response, identifier in responses:
                status = _status_of(response)
                if status is None:
                    return _moved(
                        MoveOutcome.FAILED,
                        None,
                        f"{node.ae_title} at {node.address} stopped answering during the retrieve "
                        f"(aborted or timed out): check that it allows {app_settings.SCP_AE_TITLE} "
                        "to retrieve",
                        progress,
                    )
                progress = MoveProgress(
                    remaining=_counter(identifier, response, "NumberOfRemainingSuboperations"),
                    completed=_counter(identifier, response, "NumberOfCompletedSuboperations")
                    or progress.completed,
                    failed=_counter(identifier, response, "NumberOfFailedSuboperations") or progress.failed,
                    warning=_counter(identifier, response, "NumberOfWarningSuboperations")
                    or progress.warning,
                )
                if status == 0xFF00:
                    total = max(total, (progress.remaining or 0) + _done(progress) + progress.failed)
                    on_progress(progress)
                    continue
                if status != 0x0000 and total > _done(progress) + progress.failed:
                    # A PACS that gives up mid-way (Orthanc stops at the first refused image)
                    # may not count what it never sent: those images did not arrive either.
                    progress = replace(progress, failed=total - _done(progress))
                return _final(status, progress, destination_ae)
    except PacsError as exc:
        return _moved(MoveOutcome.FAILED, None, str(exc), progress)
    return _moved(MoveOutcome.FAILED, None, f"{node.ae_title} ended the retrieve without a status", progress)


def _moved(outcome: MoveOutcome, status: int | None, message: str, progress: MoveProgress) -> MoveResult:
    return MoveResult(
        outcome=outcome,
        status=status,
        message=message,
        completed=progress.completed,
        failed=progress.failed,
        warning=progress.warning,
        remaining=progress.remaining,
    )


def _done(progress: MoveProgress) -> int:
    return progress.completed + progress.warning


def _final(status: int, progress: MoveProgress, destination_ae: str) -> MoveResult:
    done, failed = _done(progress), progress.failed
    images = f"{done} image{'s' if done != 1 else ''} received"
    if status in (0x0000, 0xB000) or (status & 0xF000) == 0xB000:
        if failed and done:
            return _moved(MoveOutcome.PARTIAL, status, f"{images}, {failed} failed", progress)
        if failed:
            return _moved(MoveOutcome.FAILED, status, f"All {failed} images failed to arrive", progress)
        if not done:
            return _moved(MoveOutcome.FAILED, status, "The PACS sent no images for this study", progress)
        warned = f" ({progress.warning} with warnings)" if progress.warning else ""
        return _moved(MoveOutcome.SUCCESS, status, images + warned, progress)
    if done:
        message = f"{images}, {failed} failed: the PACS ended the retrieve with status 0x{status:04X}"
        return _moved(MoveOutcome.PARTIAL, status, message, progress)
    return _moved(MoveOutcome.FAILED, status, move_status_meaning(status, destination_ae), progress)
