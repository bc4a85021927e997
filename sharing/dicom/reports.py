"""Reports as a patient can open them: a structured report as plain text, an encapsulated PDF as PDF,
an encapsulated CDA document as its XML and as plain text."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any
from xml.parsers import expat

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


def encapsulated_cda(path: str | os.PathLike[str]) -> bytes:
    """The CDA document (XML) inside an Encapsulated CDA instance, without trailing padding."""
    try:
        ds = pydicom.dcmread(path)
        data = ds.get("EncapsulatedDocument")
        length = ds.get("EncapsulatedDocumentLength")
    except _PARSE_ERRORS as exc:
        raise UnreadableDicom(f"cannot read the document: {type(exc).__name__}") from exc
    if not isinstance(data, bytes) or not data.strip(b"\x00 "):
        raise UnreadableDicom("the instance holds no document")
    if isinstance(length, int) and 0 < length <= len(data):
        data = data[:length]
    return data.rstrip(b"\x00 ")


_HL7 = "{urn:hl7-org:v3}"
_BLOCKS = {"paragraph", "item", "tr", "caption", "title"}


def cda_text(document: bytes) -> str:
    """A CDA document as plain text: its title, then each section's title (upper case) and its
    narrative (paragraphs, list items, table rows), the sections in document order.

    Documents with a DOCTYPE are refused: a CDA has no use for one, and entity definitions are how
    expansion attacks work."""
    _refuse_doctype(document)
    try:
        root = ET.fromstring(document)  # noqa: S314 -- no DOCTYPE, so no entities to expand
    except (ET.ParseError, ValueError) as exc:
        raise UnreadableDicom("the CDA document is not well-formed XML") from exc
    lines = [_plain(root.find(f"{_HL7}title")) or "Report", ""]
    body = root.find(f"{_HL7}component/{_HL7}structuredBody")
    if body is not None:
        for section in body.iter(f"{_HL7}section"):
            title = _plain(section.find(f"{_HL7}title"))
            if title:
                lines.append(title.upper())
            text = section.find(f"{_HL7}text")
            if text is not None:
                for block in _narrative(text):
                    lines += list(_wrapped("", block))
            lines.append("")
    else:
        unstructured = root.find(f"{_HL7}component/{_HL7}nonXMLBody/{_HL7}text")
        readable = unstructured is not None and unstructured.get("representation", "TXT").upper() == "TXT"
        if readable and unstructured is not None and (unstructured.text or "").strip():
            lines += list(_wrapped("", (unstructured.text or "").strip()))
    return "\r\n".join(lines).rstrip() + "\r\n"


def _refuse_doctype(document: bytes) -> None:
    """Reject DOCTYPE and entity declarations before anything expands them."""

    def refuse(*args: Any) -> None:
        raise UnreadableDicom("the CDA document declares a DOCTYPE or entities")

    parser = expat.ParserCreate()
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    try:
        parser.Parse(document, True)
    except expat.ExpatError as exc:
        raise UnreadableDicom("the CDA document is not well-formed XML") from exc


def _local(element: ET.Element) -> str:
    return element.tag.rsplit("}", 1)[-1] if isinstance(element.tag, str) else ""


def _plain(element: ET.Element | None) -> str:
    if element is None:
        return ""
    return " ".join("".join(element.itertext()).split())


def _narrative(text: ET.Element) -> list[str]:
    """A section's narrative block as paragraphs: one per paragraph, list item or table row;
    line breaks kept; loose text between blocks kept as a paragraph of its own."""
    blocks: list[str] = []
    current: list[str] = []

    def flush() -> None:
        joined = "\n".join(" ".join(line.split()) for line in "".join(current).split("\n"))
        if joined.strip():
            blocks.append(joined.strip())
        current.clear()

    def walk(element: ET.Element, depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise UnreadableDicom("the CDA narrative is nested too deep")
        name = _local(element)
        if name in _BLOCKS or name in ("list", "table", "thead", "tbody"):
            flush()
        if name == "br":
            current.append("\n")
        elif name in ("td", "th") and current and "".join(current).strip():
            current.append(" | ")
        if name == "item":
            current.append("- ")
        current.append(element.text or "")
        for child in element:
            walk(child, depth + 1)
            current.append(child.tail or "")
        if name in _BLOCKS:
            flush()

    walk(text, 0)
    flush()
    return blocks


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
