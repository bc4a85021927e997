"""Studies as a zip laid out like an IHE PDI disc, built while it is sent.

The zip is written by the standard library to a sink that is emptied after every write, so the
archive is never held: each DICOM object goes from the object store into the response a chunk at a
time, stored (not compressed) with ZIP64 where an entry may pass 4 GB. The DICOMDIR needs every
header, which is read from the first chunk of each object as it streams past (only an instance
whose header is longer than that is read a second time), and is written last. Memory stays at a
few MB whatever the study size: a chunk, one decoded frame for a preview, and a few hundred bytes
of directory record per instance.

Every name in the zip is made by Lightbox from its own counters, never from DICOM text.
"""

from __future__ import annotations

import enum
import io
import logging
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from sharing.access.scope import ViewerScope
from sharing.conf import app_settings
from sharing.dicom.dicomdir import DicomdirBuilder, HeaderIncomplete, file_id_component
from sharing.dicom.errors import DicomInputError
from sharing.dicom.render import RenderKind, render_thumbnail
from sharing.dicom.reports import cda_text, encapsulated_cda, encapsulated_pdf, structured_report_text
from sharing.dicom.sop import ENCAPSULATED_PDF, is_encapsulated_cda, is_report_sop_class, is_structured_report
from sharing.models import AuditEvent, Instance, Series, Study
from sharing.services.audit import Client
from sharing.services.viewer_audit import viewer_access_record
from sharing.storage import get_store

logger = logging.getLogger(__name__)

# The DICOMDIR header is read from this much of each object's start (one store chunk).
HEADER_PROBE = 1024 * 1024
# Entries this big or bigger get ZIP64 headers whatever size the database says they have.
ZIP64_FROM = 1024 * 1024 * 1024
PDI_PREVIEW_SIZE = 1024
JPEG_ONLY_MAX_SIZE = 2048


class DownloadKind(enum.StrEnum):
    PDI = "pdi"  # DICOM files, DICOMDIR, previews, reports, README
    JPEG = "jpeg"  # pictures only: one JPEG per image, reports, README


def download_filename(*, studies: Sequence[Study]) -> str:
    """``lightbox-study-YYYYMMDD.zip`` from the study date (today's date for several studies)."""
    if len(studies) == 1 and studies[0].study_date is not None:
        return f"lightbox-study-{studies[0].study_date:%Y%m%d}.zip"
    prefix = "lightbox-study" if len(studies) == 1 else "lightbox-studies"
    return f"{prefix}-{timezone.localdate():%Y%m%d}.zip"


def _series_instances(series: Series) -> list[Instance]:
    """One series' instances in reading order (a series at a time keeps a huge study's rows out
    of memory)."""
    return list(
        Instance.objects.filter(series=series, state=Instance.State.INDEXED)
        .order_by("instance_number", "sop_instance_uid")
        .only("pk", "sop_class_uid", "sop_instance_uid", "object_key", "size_bytes", "rows", "columns")
    )


def _downloadable_count(study: Study) -> int:
    return Instance.objects.filter(series__study=study, state=Instance.State.INDEXED).count()


@transaction.atomic
def download_record(
    *,
    scope: ViewerScope,
    studies: Sequence[Study],
    kind: DownloadKind,
    client: Client,
) -> None:
    """One DOWNLOAD event per study, by whoever is downloading, written before the first byte."""
    for study in studies:
        viewer_access_record(
            scope,
            action=AuditEvent.Action.DOWNLOAD,
            client=client,
            patient=study.patient,
            study_instance_uid=study.study_instance_uid,
            detail={"kind": kind.value, "instances": _downloadable_count(study)},
        )


def study_archive_chunks(*, studies: Sequence[Study], kind: DownloadKind) -> Iterator[bytes]:
    """The zip of ``studies`` (already authorized), as it is built."""
    sink = _Sink()
    with zipfile.ZipFile(sink, mode="w", allowZip64=True) as archive:
        writer = _ArchiveWriter(archive=archive, sink=sink, kind=kind)
        yield from writer.readme()
        for study in studies:
            yield from writer.study(study)
        yield from writer.dicomdir()
    yield from sink.take()


class _Sink:
    """A write-only, unseekable file: zipfile then writes data descriptors after each entry."""

    def __init__(self) -> None:
        self._pieces: list[bytes] = []
        self._position = 0

    def write(self, data: bytes, /) -> int:
        self._pieces.append(bytes(data))
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def take(self) -> Iterator[bytes]:
        pieces, self._pieces = self._pieces, []
        yield from (piece for piece in pieces if piece)


@dataclass
class _ArchiveWriter:
    archive: zipfile.ZipFile
    sink: _Sink
    kind: DownloadKind
    directory: DicomdirBuilder = field(default_factory=DicomdirBuilder)
    patients: dict[int, int] = field(default_factory=dict)
    studies: int = 0
    series_count: int = 0
    instances: int = 0
    text_reports: int = 0
    pdf_reports: int = 0

    def _info(self, name: str, *, compress: bool) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(name, date_time=timezone.localtime().timetuple()[:6])
        info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        info.external_attr = 0o100644 << 16  # a regular file, rw-r--r--
        return info

    def _small(self, name: str, data: bytes, *, compress: bool) -> Iterator[bytes]:
        self.archive.writestr(self._info(name, compress=compress), data)
        yield from self.sink.take()

    def readme(self) -> Iterator[bytes]:
        yield from self._small("README.TXT", _readme(self.kind).encode("ascii"), compress=True)

    def study(self, study: Study) -> Iterator[bytes]:
        patient = self.patients.setdefault(study.patient_id, len(self.patients) + 1)
        self.studies += 1
        for series in Series.objects.filter(study=study).order_by("series_number", "pk"):
            instances = _series_instances(series)
            if not instances:
                continue
            self.series_count += 1
            folder = [
                "DICOM",
                file_id_component("P", patient),
                file_id_component("S", self.studies),
                file_id_component("E", self.series_count),
            ]
            for number, instance in enumerate(instances, 1):
                if is_report_sop_class(instance.sop_class_uid):
                    yield from self._report(instance)
                if self.kind is DownloadKind.PDI:
                    self.instances += 1
                    yield from self._dicom(instance, [*folder, file_id_component("I", self.instances)])
                elif not is_report_sop_class(instance.sop_class_uid):
                    name = f"JPEG/SE{self.series_count:06d}/IM{number:06d}.JPG"
                    yield from self._jpeg(instance, name, JPEG_ONLY_MAX_SIZE)
            middle = instances[len(instances) // 2]
            if self.kind is DownloadKind.PDI and not is_report_sop_class(middle.sop_class_uid):
                yield from self._jpeg(middle, f"JPEG/SE{self.series_count:06d}.JPG", PDI_PREVIEW_SIZE)

    def _dicom(self, instance: Instance, file_id: list[str]) -> Iterator[bytes]:
        info = self._info("/".join(file_id), compress=False)
        info.file_size = instance.size_bytes
        head = bytearray()
        total = 0
        store = get_store()
        with self.archive.open(info, mode="w", force_zip64=instance.size_bytes >= ZIP64_FROM) as entry:
            for chunk in store.iter_bytes(instance.object_key):
                entry.write(chunk)
                total += len(chunk)
                if len(head) < HEADER_PROBE:
                    head += chunk[: HEADER_PROBE - len(head)]
                yield from self.sink.take()
        yield from self.sink.take()
        try:
            try:
                self.directory.add(io.BytesIO(head), file_id=file_id, whole=len(head) == total)
            except HeaderIncomplete:
                with store.local_copy(instance.object_key) as path, path.open("rb") as handle:
                    self.directory.add(handle, file_id=file_id, whole=True)
        except DicomInputError:
            # Indexed, so it parsed once; if it no longer does, the file is still in the zip.
            logger.warning("instance %s left out of the DICOMDIR: header unreadable", instance.pk)

    def _jpeg(self, instance: Instance, name: str, limit: int) -> Iterator[bytes]:
        size = min(max(instance.rows or limit, instance.columns or limit, 16), limit)
        with get_store().local_copy(instance.object_key) as path:
            preview = render_thumbnail(path, size=size, max_pixels=app_settings.MAX_IMAGE_PIXELS)
        if preview.kind is RenderKind.IMAGE:  # placeholders are for the web page, not the disc
            yield from self._small(name, preview.data, compress=False)

    def _report(self, instance: Instance) -> Iterator[bytes]:
        xml = None
        try:
            with get_store().local_copy(instance.object_key) as path:
                if is_structured_report(instance.sop_class_uid):
                    text = structured_report_text(path)
                    pdf = None
                elif instance.sop_class_uid == ENCAPSULATED_PDF:
                    text, pdf = None, encapsulated_pdf(path)
                elif is_encapsulated_cda(instance.sop_class_uid):
                    text, pdf, xml = None, None, encapsulated_cda(path)
                else:
                    return
        except DicomInputError:
            logger.warning("report %s left out of the REPORT folder: unreadable", instance.pk)
            return
        if xml is not None:
            # The document as sent, and beside it (same number) a plain text rendition unless
            # its XML is unsafe to parse.
            self.text_reports += 1
            name = f"REPORT/REPORT{self.text_reports:02d}"
            yield from self._small(f"{name}.XML", xml, compress=True)
            try:
                yield from self._small(f"{name}.TXT", cda_text(xml).encode("utf-8"), compress=True)
            except DicomInputError:
                logger.warning("CDA report %s has no text rendition: unreadable XML", instance.pk)
            return
        if text is not None:
            self.text_reports += 1
            name = f"REPORT/REPORT{self.text_reports:02d}.TXT"
            yield from self._small(name, text.encode("utf-8"), compress=True)
        if pdf is not None:
            self.pdf_reports += 1
            yield from self._small(f"REPORT/REPORT{self.pdf_reports:02d}.PDF", pdf, compress=True)

    def dicomdir(self) -> Iterator[bytes]:
        if self.kind is not DownloadKind.PDI:
            return
        with self.archive.open(self._info("DICOMDIR", compress=True), mode="w") as entry:
            for piece in self.directory.chunks():
                entry.write(piece)
                yield from self.sink.take()
        yield from self.sink.take()


def _readme(kind: DownloadKind) -> str:
    today = timezone.localdate().isoformat()
    if kind is DownloadKind.PDI:
        contents = [
            "DICOMDIR   The index of the images, read by DICOM viewers. Open this file (or the",
            "           whole folder) in any DICOM viewer to see every image with its details.",
            "DICOM/     The images themselves as DICOM files, exactly as the hospital sent them.",
            "JPEG/      One preview picture per series (the middle image), for a quick look.",
            "           SE000003.JPG is the preview of the series in the DICOM folder E0000003.",
            "REPORT/    The written report, if there is one: .TXT as plain text, .PDF and .XML",
            "           (an HL7 CDA document) as sent.",
        ]
        viewing = [
            "To look at the images properly, use a DICOM viewer: most are free (for example",
            "Weasis, Horos, MicroDicom or RadiAnt). Open the DICOMDIR file, or the folder this",
            "file is in. The JPEG previews open in any picture viewer but are not for diagnosis.",
        ]
    else:
        contents = [
            "JPEG/      One picture per image, a folder per series (SE000001, SE000002, ...).",
            "           A multi-frame image (a clip) is shown by its middle frame.",
            "REPORT/    The written report, if there is one: .TXT as plain text, .PDF and .XML",
            "           (an HL7 CDA document) as sent.",
        ]
        viewing = [
            "These pictures open in any picture viewer. They are copies for viewing, not for",
            "diagnosis: a doctor will ask for the original DICOM images, which you can download",
            'from Lightbox too ("Download (DICOM + viewer-ready disc layout)").',
        ]
    lines = [
        "MEDICAL IMAGES",
        "",
        "This archive contains personal health information. Keep it private, and share it",
        "only with people you choose, such as your doctors.",
        "",
        "WHAT IS IN IT",
        "",
        *contents,
        "",
        "HOW TO OPEN IT",
        "",
        *viewing,
        "",
        f"Generated by Lightbox on {today}.",
        "",
    ]
    return "\r\n".join(lines)
