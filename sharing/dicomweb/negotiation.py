"""Reading the Accept header of DICOMweb requests (PS3.18 §8.7)."""

from __future__ import annotations

from dataclasses import dataclass

from sharing.dicom.frames import EXPLICIT_VR_LITTLE_ENDIAN, FrameLayout


@dataclass(frozen=True)
class MediaRange:
    media_type: str
    params: dict[str, str]

    @property
    def type(self) -> str | None:
        return self.params.get("type")

    @property
    def transfer_syntax(self) -> str | None:
        return self.params.get("transfer-syntax")


def accepted(header: str) -> list[MediaRange]:
    """The media ranges of an Accept header, most preferred first; none means anything."""
    ranges: list[tuple[float, int, MediaRange]] = []
    for position, item in enumerate(_split(header or "*/*")):
        media_type, *raw_params = (part.strip() for part in _split(item, ";"))
        params: dict[str, str] = {}
        for raw in raw_params:
            name, _, value = raw.partition("=")
            params[name.strip().lower()] = value.strip().strip('"').lower()
        try:
            q = float(params.pop("q", "1"))
        except ValueError:
            q = 0.0
        if media_type and q > 0:
            ranges.append((-q, position, MediaRange(media_type.lower(), params)))
    return [media_range for _, _, media_range in sorted(ranges, key=lambda r: (r[0], r[1]))]


def _split(text: str, separator: str = ",") -> list[str]:
    """Split on `separator` outside double quotes."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == separator and not quoted:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    parts.append("".join(current).strip())
    return [part for part in parts if part]


def _is_any(media_range: MediaRange) -> bool:
    return media_range.media_type in ("*/*", "multipart/*") or (
        media_range.media_type == "multipart/related" and media_range.type in (None, "*/*")
    )


def accepts_json(header: str) -> bool:
    return any(
        r.media_type in ("*/*", "application/*", "application/dicom+json", "application/json")
        for r in accepted(header)
    )


def accepts_instance(header: str, *, transfer_syntax: str) -> bool:
    """Whether the stored Part-10 bytes (in `transfer_syntax`) may be sent: no transcoding here."""
    for r in accepted(header):
        dicom = _is_any(r) or (r.media_type == "multipart/related" and r.type == "application/dicom")
        if dicom and r.transfer_syntax in (None, "*", transfer_syntax):
            return True
    return False


def accepts_bulk_data(header: str) -> bool:
    """Bulk data other than pixels goes as multipart/related; type="application/octet-stream"."""
    return any(
        _is_any(r) or (r.media_type == "multipart/related" and r.type == "application/octet-stream")
        for r in accepted(header)
    )


def rendered_media_type(header: str) -> str | None:
    for r in accepted(header):
        if r.media_type in ("*/*", "image/*", "image/jpeg"):
            return "image/jpeg"
        if r.media_type == "image/png":
            return "image/png"
    return None


def frame_choice(header: str, layout: FrameLayout) -> str | None:
    """How to send frames: "stored" (as they lie in the file), "decoded" (to Explicit VR Little
    Endian), or None when nothing the client accepts can be produced.

    Frames without stored byte ranges (deflated or big endian data, fragments that cannot be told
    apart) are decoded whenever the client accepts any syntax (PS3.18 §8.7.3.5: `*` lets the
    origin server choose) or Explicit VR Little Endian.
    """
    stored = layout.transfer_syntax_uid
    sendable = layout.media_type is not None
    for r in accepted(header):
        if _is_any(r):
            return "stored" if sendable else "decoded"
        if r.media_type != "multipart/related":
            continue
        syntax = r.transfer_syntax
        if r.type == "application/octet-stream":
            if (
                not layout.encapsulated
                and sendable
                and syntax in (None, "*", EXPLICIT_VR_LITTLE_ENDIAN, stored)
            ):
                return "stored"
            if layout.encapsulated and sendable and syntax in ("*", stored):
                return "stored"
            if syntax in (None, EXPLICIT_VR_LITTLE_ENDIAN) or (not sendable and syntax == "*"):
                return "decoded"
        elif (
            layout.encapsulated and sendable and r.type == layout.media_type and syntax in (None, "*", stored)
        ):
            return "stored"
    return None
