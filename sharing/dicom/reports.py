"""Reports as a patient can open them: a structured report as plain text, an encapsulated PDF as PDF."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from sharing.dicom.errors import UnreadableDicom

_PARSE_ERRORS = (
    InvalidDicomError, ValueError, TypeError, KeyError, IndexError, AttributeError, EOFError,
    OverflowError, UnicodeError, OSError, RecursionError,
)  # fmt: skip
_MAX_DEPTH = 32  # nesting a real report never reaches; hostile files do
_WRAP = 100


def structured_report_text(path: str | os.PathLike[str]) -> str:
    """The SR's content tree as indented text: containers as headings, TEXT/CODE/NUM/DATE… items
    as ``Concept: value``. Nothing but what the report itself says (plus its title)."""
    try:
        ds = pydicom.dcmread(path)
        lines = [_concept(ds) or "Report", ""]
        lines += _walk(ds.get("ContentSequence") or [], 0)
    except _PARSE_ERRORS as exc:
        raise UnreadableDicom(f"cannot read the report: {type(exc).__name__}") from exc
    return "\r\n".join(lines).rstrip() + "\r\n"  # CRLF: the recipient may well open it in Notepad


def encapsulated_pdf(path: str | os.PathLike[str]) -> bytes | None:
    """The PDF inside an Encapsulated PDF instance, without its even-length padding; None if the
    instance holds another kind of document."""
    try:
        ds = pydicom.dcmread(path)
        mime = str(ds.get("MIMETypeOfEncapsulatedDocument") or "").strip().lower()
        data = ds.get("EncapsulatedDocument")
        if mime != "application/pdf" or not isinstance(data, bytes):
            return None
        length = ds.get("EncapsulatedDocumentLength")
    except _PARSE_ERRORS as exc:
        raise UnreadableDicom(f"cannot read the document: {type(exc).__name__}") from exc
    if isinstance(length, int) and 0 < length <= len(data):
        return data[:length]
    return data.rstrip(b"\x00") if data.endswith(b"\x00") else data


def _walk(items: Any, depth: int) -> Iterator[str]:
    if depth > _MAX_DEPTH:
        raise RecursionError("SR content tree nested too deep")
    indent = "  " * depth
    for item in items:
        kind = str(item.get("ValueType") or "").strip().upper()
        concept = _concept(item)
        if kind == "CONTAINER":
            if concept:
                yield f"{indent}{concept.upper()}"
            yield from _walk(item.get("ContentSequence") or [], depth + 1)
            yield ""
            continue
        value = _value(item, kind)
        if value:
            label = f"{concept}: " if concept else ""
            yield from _wrapped(f"{indent}{label}", value)
        # Items may carry children (e.g. a finding's properties): keep them under it.
        yield from _walk(item.get("ContentSequence") or [], depth + 1)


def _value(item: Dataset, kind: str) -> str:
    if kind == "TEXT":
        return str(item.get("TextValue") or "").strip()
    if kind == "CODE":
        return _meaning(item.get("ConceptCodeSequence"))
    if kind == "NUM":
        measured = (item.get("MeasuredValueSequence") or [None])[0]
        if measured is None:
            return ""
        unit = _meaning(measured.get("MeasurementUnitsCodeSequence"))
        number = str(measured.get("NumericValue") or "").strip()
        return f"{number} {unit}".strip() if unit not in ("", "no units", "1") else number
    if kind in ("DATE", "TIME", "DATETIME"):
        keyword = {"DATE": "Date", "TIME": "Time", "DATETIME": "DateTime"}[kind]
        return str(item.get(keyword) or "").strip()
    if kind == "PNAME":
        return str(item.get("PersonName") or "").replace("^", " ").strip()
    if kind == "UIDREF":
        return ""  # identifiers mean nothing to a reader
    return ""


def _concept(item: Dataset) -> str:
    return _meaning(item.get("ConceptNameCodeSequence"))


def _meaning(sequence: Any) -> str:
    if not sequence:
        return ""
    return str(sequence[0].get("CodeMeaning") or "").strip()


def _wrapped(prefix: str, value: str) -> Iterator[str]:
    """Long free text broken at spaces; the text's own line breaks kept."""
    continuation = " " * len(prefix)
    first = True
    for paragraph in value.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = ""
        for word in paragraph.split(" "):
            if line and len(line) + 1 + len(word) > _WRAP:
                yield (prefix if first else continuation) + line
                first, line = False, word
            else:
                line = f"{line} {word}" if line else word
        yield (prefix if first else continuation) + line
        first = False
