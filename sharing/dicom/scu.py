"""A small Storage SCU: sending Part-10 files to a DICOM peer (the demo seed, tools, tests)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pynetdicom import AE


@dataclass(frozen=True)
class SendResult:
    sent: int
    statuses: dict[str, int]  # SOP Instance UID -> DIMSE status

    @property
    def failures(self) -> dict[str, int]:
        return {uid: status for uid, status in self.statuses.items() if status != 0x0000}


class AssociationRefused(Exception):
    pass


def send_files(
    paths: Sequence[Path], *, host: str, port: int, called_ae: str, calling_ae: str = "LIGHTBOX-SCU"
) -> SendResult:
    headers = [(path, pydicom.dcmread(path, stop_before_pixels=True)) for path in paths]
    ae = AE(ae_title=calling_ae)
    contexts = sorted({(str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID)) for _, ds in headers})
    for sop_class, syntax in contexts:
        ae.add_requested_context(sop_class, syntax)
    assoc = ae.associate(host, port, ae_title=called_ae)
    if not assoc.is_established:
        raise AssociationRefused(f"{called_ae} at {host}:{port} refused the association")
    statuses: dict[str, int] = {}
    try:
        for path, ds in headers:
            response = assoc.send_c_store(path)
            statuses[str(ds.SOPInstanceUID)] = int(getattr(response, "Status", 0xFFFF))
    finally:
        assoc.release()
    return SendResult(sent=len(statuses), statuses=statuses)
