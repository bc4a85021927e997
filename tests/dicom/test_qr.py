"""Query/retrieve against Orthanc, a real PACS: C-ECHO, C-FIND at study level, C-MOVE to Lightbox."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pynetdicom import AE, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    StudyRootQueryRetrieveInformationModelMove,
)

from sharing.dicom.qr import (
    CriteriaError,
    DicomNode,
    MoveOutcome,
    MoveProgress,
    PacsUnreachable,
    _final,
    echo,
    find_studies,
    move_study,
    readable_name,
    study_query,
)
from sharing.dicom.scu import send_files
from sharing.dicom.synthetic import SyntheticPatient, cr_image, ct_series, mr_series, write_study
from sharing.models import Instance, Study
from tests.support.network import free_port
from tests.support.orthanc import Orthanc, running_orthanc

pytestmark = pytest.mark.integration

JANE = SyntheticPatient(patient_id="PACS-1001", issuer="HOSP", name="DOE^JANE", birth_date="19800101")
JOHN = SyntheticPatient(
    patient_id="PACS-2002", issuer="HOSP", name="SMITH^JOHN", birth_date="19700505", sex="M"
)


@dataclass
class Pacs:
    orthanc: Orthanc
    node: DicomNode
    ct_uid: str
    mr_uid: str
    cr_uid: str


@pytest.fixture(scope="module")
def pacs(tmp_path_factory) -> Iterator[Pacs]:
    """One Orthanc for the module, holding three studies of two patients."""
    tmp = tmp_path_factory.mktemp("pacs")
    ct = ct_series(JANE, slices=4, size=32, study_date="20260115")
    mr = mr_series(JANE, slices=2, size=32, study_date="20250601")
    cr = cr_image(JOHN, rows=64, cols=48)
    # Lightbox is known to the PACS by its AE title; tests point it at their own SCP.
    modalities = {"lightbox": ("LIGHTBOX", "127.0.0.1", free_port())}
    with running_orthanc(
        tmp / "orthanc", http_port=free_port(), dicom_port=free_port(), modalities=modalities
    ) as orthanc:
        for index, datasets in enumerate((ct, mr, cr)):
            orthanc.upload_all(write_study(datasets, tmp / f"study-{index}"))
        yield Pacs(
            orthanc=orthanc,
            node=DicomNode(orthanc.ae_title, "127.0.0.1", orthanc.dicom_port),
            ct_uid=str(ct[0].StudyInstanceUID),
            mr_uid=str(mr[0].StudyInstanceUID),
            cr_uid=str(cr[0].StudyInstanceUID),
        )


def closed_node() -> DicomNode:
    return DicomNode("NOBODY", "127.0.0.1", free_port())


def test_echo_answers_with_a_round_trip_time(pacs):
    result = echo(pacs.node)

    assert result.ok, result.message
    assert result.status == 0x0000
    assert result.round_trip_ms is not None
    assert result.round_trip_ms > 0


def test_echo_to_a_closed_port_says_the_pacs_is_unreachable():
    node = closed_node()

    result = echo(node)

    assert not result.ok
    assert "unreachable" in result.message
    assert f"127.0.0.1:{node.port}" in result.message


def test_find_by_patient_id_returns_that_patients_studies_with_their_attributes(pacs):
    matches = find_studies(pacs.node, patient_id="PACS-1001")

    assert {m.study_instance_uid for m in matches} == {pacs.ct_uid, pacs.mr_uid}
    ct = next(m for m in matches if m.study_instance_uid == pacs.ct_uid)
    assert ct.study_date == datetime.date(2026, 1, 15)
    assert ct.description == "CT CHEST W/O CONTRAST"
    assert ct.modalities == ("CT",)
    assert ct.accession_number.startswith("LB")
    assert ct.patient_id == "PACS-1001"
    assert ct.patient_name == "DOE JANE"
    assert ct.birth_date == datetime.date(1980, 1, 1)
    assert ct.sex == "F"
    assert ct.number_of_series == 1
    assert ct.number_of_instances == 4


def test_find_by_name_wildcard(pacs):
    matches = find_studies(pacs.node, patient_name="smi*")

    assert [m.study_instance_uid for m in matches] == [pacs.cr_uid]
    assert matches[0].patient_name == "SMITH JOHN"


def test_find_by_date_range(pacs):
    matches = find_studies(pacs.node, date_from=datetime.date(2026, 1, 1), date_to=datetime.date(2026, 1, 31))

    assert {m.study_instance_uid for m in matches} == {pacs.ct_uid}


def test_find_by_open_ended_date_range_and_birth_date(pacs):
    matches = find_studies(
        pacs.node, birth_date=datetime.date(1980, 1, 1), date_to=datetime.date(2025, 12, 31)
    )

    assert {m.study_instance_uid for m in matches} == {pacs.mr_uid}


def test_find_by_modality(pacs):
    assert {m.study_instance_uid for m in find_studies(pacs.node, modality="mr")} == {pacs.mr_uid}
    both = find_studies(pacs.node, modality="CT, CR")
    assert {m.study_instance_uid for m in both} == {pacs.ct_uid, pacs.cr_uid}


def test_find_stops_at_the_limit(pacs):
    assert len(find_studies(pacs.node, limit=2)) == 2


def test_find_with_nothing_matching_is_an_empty_list(pacs):
    assert find_studies(pacs.node, patient_id="NOT-THERE") == []


def test_find_against_a_closed_port_raises_unreachable():
    with pytest.raises(PacsUnreachable, match="unreachable"):
        find_studies(closed_node(), patient_id="X")


@pytest.mark.parametrize(
    ("criteria", "problem"),
    [
        ({"patient_name": "DOE\\SMITH"}, "backslash"),
        ({"patient_id": "A" * 65}, "longer than 64"),
        ({"patient_id": "A\x00B"}, "control"),
        ({"modality": "C-T"}, "modality"),
        ({"modality": "ABCDEFGHIJKLMNOPQ"}, "modality"),
        ({"date_from": datetime.date(2026, 2, 1), "date_to": datetime.date(2026, 1, 1)}, "date range"),
    ],
)
def test_match_values_that_cannot_be_sent_are_refused(criteria, problem):
    with pytest.raises(CriteriaError, match=problem):
        study_query(**criteria)


def test_wildcards_stay_wildcards_in_the_query():
    query = study_query(patient_name="DOE^J*", patient_id="PACS-?00")

    assert str(query.PatientName) == "DOE^J*"
    assert query.PatientID == "PACS-?00"
    assert query.QueryRetrieveLevel == "STUDY"


def test_readable_names_drop_the_carets():
    assert readable_name("DOE^JANE^^DR^") == "DOE JANE DR"
    assert readable_name("YAMADA^TARO=山田^太郎") == "YAMADA TARO"


def test_move_brings_a_study_into_lightbox_and_reports_progress(pacs, scp):
    pacs.orthanc.modality_set("lightbox", scp.ae_title, scp.host, scp.port)
    seen: list[MoveProgress] = []

    result = move_study(
        pacs.node, study_instance_uid=pacs.ct_uid, destination_ae=scp.ae_title, on_progress=seen.append
    )

    assert result.outcome is MoveOutcome.SUCCESS, result.message
    assert (result.completed, result.failed, result.warning) == (4, 0, 0)
    assert "4 images received" in result.message
    assert seen
    assert seen[0].remaining is not None
    assert seen[0].remaining > 0
    assert [p.completed for p in seen] == sorted(p.completed for p in seen)
    assert Instance.objects.filter(study_instance_uid=pacs.ct_uid, state=Instance.State.INDEXED).count() == 4
    assert Study.objects.get(study_instance_uid=pacs.ct_uid).number_of_instances == 4


def test_move_to_a_destination_orthanc_does_not_know_fails_and_says_to_register_lightbox(pacs):
    # Orthanc answers 0xC000 (not 0xA801) for an unknown destination AE.
    result = move_study(
        pacs.node, study_instance_uid=pacs.ct_uid, destination_ae="NOT-REGISTERED", on_progress=lambda p: None
    )

    assert result.outcome is MoveOutcome.FAILED
    assert result.status == 0xC000
    assert "NOT-REGISTERED as a move destination" in result.message


@pytest.fixture
def move_scp_without_destinations() -> Iterator[DicomNode]:
    """A Q/R SCP (pynetdicom) that knows no move destination: it answers 0xA801 as the standard says."""

    def handle_move(event: Any) -> Iterator[Any]:
        yield None, None

    ae = AE(ae_title="STRICT-PACS")
    ae.add_supported_context(StudyRootQueryRetrieveInformationModelMove)
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_MOVE, handle_move)])
    assert server is not None
    try:
        yield DicomNode("STRICT-PACS", "127.0.0.1", port)
    finally:
        server.shutdown()


def test_move_destination_unknown_a801_says_to_register_lightbox(move_scp_without_destinations):
    result = move_study(
        move_scp_without_destinations,
        study_instance_uid="1.2.3",
        destination_ae="LIGHTBOX",
        on_progress=lambda p: None,
    )

    assert result.outcome is MoveOutcome.FAILED
    assert result.status == 0xA801
    assert result.message.startswith("Move destination unknown")
    assert "register Lightbox's AE title LIGHTBOX" in result.message


def test_move_from_a_pacs_that_is_down_fails_as_unreachable():
    node = closed_node()

    result = move_study(
        node, study_instance_uid="1.2.3", destination_ae="LIGHTBOX", on_progress=lambda p: None
    )

    assert result.outcome is MoveOutcome.FAILED
    assert "unreachable" in result.message
    assert f":{node.port}" in result.message


@pytest.mark.parametrize(
    ("status", "progress", "outcome", "text"),
    [
        (0x0000, MoveProgress(0, 5, 0, 0), MoveOutcome.SUCCESS, "5 images received"),
        (0x0000, MoveProgress(0, 4, 0, 1), MoveOutcome.SUCCESS, "1 with warnings"),
        (0xB000, MoveProgress(0, 3, 2, 0), MoveOutcome.PARTIAL, "3 images received, 2 failed"),
        (0xB000, MoveProgress(0, 0, 2, 0), MoveOutcome.FAILED, "All 2 images failed"),
        (0x0000, MoveProgress(None, 0, 0, 0), MoveOutcome.FAILED, "sent no images"),
        (0xA701, MoveProgress(None, 0, 0, 0), MoveOutcome.FAILED, "out of resources"),
        (0xA702, MoveProgress(None, 0, 0, 0), MoveOutcome.FAILED, "unable to perform the sub-operations"),
        (0xC001, MoveProgress(None, 0, 0, 0), MoveOutcome.FAILED, "unable to process"),
        (0xA702, MoveProgress(3, 2, 3, 0), MoveOutcome.PARTIAL, "2 images received, 3 failed"),
    ],
)
def test_final_move_statuses_map_to_clear_outcomes(status, progress, outcome, text):
    result = _final(status, progress, "LIGHTBOX")

    assert result.outcome is outcome
    assert text in result.message


@pytest.fixture
def recorder() -> Iterator[tuple[DicomNode, list[str]]]:
    """A storage SCP that accepts anything and notes the order SOP instances arrive in."""
    received: list[str] = []

    def handle_store(event: Any) -> int:
        received.append(str(event.request.AffectedSOPInstanceUID))
        return 0x0000

    ae = AE(ae_title="RECORDER")
    ae.add_supported_context(CTImageStorage, ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"])
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, handle_store)])
    assert server is not None
    try:
        yield DicomNode("RECORDER", "127.0.0.1", port), received
    finally:
        server.shutdown()


def test_a_move_where_lightbox_refuses_an_image_is_partial(pacs, scp, recorder, tmp_path: Path):
    # Orthanc gives up at the first refused image, so the refused one must be the last it sends:
    # learn the order from a first move to a recorder, then make Lightbox refuse the last image
    # by holding a different copy of it (a conflict: Lightbox keeps its copy, answers 0x0111).
    recorder_node, order = recorder
    pacs.orthanc.modality_set("recorder", recorder_node.ae_title, recorder_node.host, recorder_node.port)
    first = move_study(
        pacs.node, study_instance_uid=pacs.ct_uid, destination_ae="RECORDER", on_progress=print
    )
    assert first.outcome is MoveOutcome.SUCCESS, first.message
    last = pacs.orthanc.request("POST", "/tools/lookup", order[-1].encode())[0]["ID"]
    altered = tmp_path / "altered.dcm"
    altered.write_bytes(pacs.orthanc.request("GET", f"/instances/{last}/file"))
    ds = pydicom.dcmread(altered)
    ds.StudyDescription = "A DIFFERENT COPY"
    ds.save_as(altered)
    assert send_files([altered], host=scp.host, port=scp.port, called_ae=scp.ae_title).failures == {}
    pacs.orthanc.modality_set("lightbox", scp.ae_title, scp.host, scp.port)

    result = move_study(
        pacs.node, study_instance_uid=pacs.ct_uid, destination_ae=scp.ae_title, on_progress=lambda p: None
    )

    assert result.outcome is MoveOutcome.PARTIAL, result.message
    assert (result.completed, result.failed) == (3, 1)
    assert "3 images received, 1 failed" in result.message
