"""The signed release authorization as a PDF: every element of the form, the statements the
patient acknowledged, the drawn signature, the typed name, and when and from where it was signed.

DejaVu Sans is embedded when the system has it (Debian's fonts-dejavu-core), so names in any
script print as typed; without it the PDF falls back to the latin-1 core font and replaces what
that font cannot show with "?" — the stored record of what was typed stays in the database.
"""

from __future__ import annotations

import io
from pathlib import Path

from django.utils import timezone

from sharing.models import ReleaseAuthorization

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"))
FONT_REGULAR = "DejaVuSans.ttf"
FONT_BOLD = "DejaVuSans-Bold.ttf"


def _dejavu() -> tuple[Path, Path] | None:
    for directory in FONT_DIRS:
        regular, bold = directory / FONT_REGULAR, directory / FONT_BOLD
        if regular.is_file() and bold.is_file():
            return regular, bold
    return None


def statements(authorization: ReleaseAuthorization) -> list[tuple[str, str]]:
    """The notices the patient acknowledges, worded for this facility: shown on the form and printed."""
    facility = authorization.facility
    contact = facility.records_contact or f"the records office of {facility.name}"
    return [
        (
            "Right to revoke",
            "I may revoke this authorization at any time, in writing, by sending my revocation to "
            f"{contact}, or by revoking it in Lightbox. Revocation does not affect information "
            "already released in reliance on this authorization.",
        ),
        (
            "Treatment not conditioned",
            f"{facility.name} will not condition my treatment, payment, enrollment or eligibility "
            "for benefits on whether I sign this authorization.",
        ),
        (
            "Redisclosure",
            "Information released under this authorization may be redisclosed by the recipient "
            "and may then no longer be protected by federal or state privacy law.",
        ),
    ]


class _Document:
    """fpdf2 is imported on first use: it adds ~50 MB to a process, and web workers that never
    render an authorization should not carry it."""

    def __init__(self) -> None:
        from fpdf import FPDF

        self.pdf = FPDF(format="A4")
        self.pdf.set_auto_page_break(auto=True, margin=15)
        self.pdf.set_margins(18, 16, 18)
        fonts = _dejavu()
        if fonts is not None:
            self.pdf.add_font("DejaVu", "", str(fonts[0]))
            self.pdf.add_font("DejaVu", "B", str(fonts[1]))
            self.family, self.unicode = "DejaVu", True
        else:
            self.family, self.unicode = "Helvetica", False
        self.pdf.add_page()

    def text(self, value: str) -> str:
        return value if self.unicode else value.encode("latin-1", "replace").decode("latin-1")

    def heading(self, value: str, size: int = 12) -> None:
        from fpdf.enums import XPos, YPos

        self.pdf.set_font(self.family, "B", size)
        self.pdf.ln(2)
        self.pdf.multi_cell(0, 7, self.text(value), new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def paragraph(self, value: str) -> None:
        from fpdf.enums import XPos, YPos

        self.pdf.set_font(self.family, "", 10)
        self.pdf.multi_cell(0, 5, self.text(value), new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def field(self, label: str, value: str) -> None:
        from fpdf.enums import XPos, YPos

        if not value:
            return
        self.pdf.set_font(self.family, "B", 10)
        self.pdf.multi_cell(0, 5, self.text(label), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.pdf.set_font(self.family, "", 10)
        self.pdf.multi_cell(0, 5, self.text(value), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.pdf.ln(1)

    def image(self, png: bytes) -> None:
        self.pdf.image(io.BytesIO(png), w=70)

    def output(self) -> bytes:
        return bytes(self.pdf.output())


def _date(value: object) -> str:
    return f"{value:%d %B %Y}" if value else ""


def authorization_pdf_render(*, authorization: ReleaseAuthorization, signature_png: bytes) -> bytes:
    """The PDF bytes of a signed authorization (not yet stored)."""
    auth = authorization
    doc = _Document()
    doc.heading("Authorization to release medical images and records", 15)
    doc.paragraph(f"Lightbox request #{auth.pk}")

    doc.heading("1. The patient")
    doc.field("Legal name", auth.legal_name)
    doc.field("Date of birth", _date(auth.birth_date))
    doc.field("Other names used", auth.other_names)
    doc.field("Medical record number", auth.mrn)
    doc.field("Email", auth.contact_email)
    doc.field("Telephone", auth.phone)
    doc.field("Address", auth.address)

    doc.heading("2. Who holds the records")
    doc.field("Facility", auth.facility.name)
    doc.field("Facility address", auth.facility.address)

    doc.heading("3. What to release")
    if auth.scope_kind == ReleaseAuthorization.ScopeKind.EXAMS:
        doc.field("Specific exams", auth.exams)
    else:
        period = f"{_date(auth.date_from) or 'the earliest record'} to {_date(auth.date_to) or 'today'}"
        doc.field("Exams performed from", period)
        doc.field("Modalities", auth.modalities or "All")
    doc.field("Content", auth.get_content_display())

    doc.heading("4. Who receives them")
    if auth.recipient_kind == ReleaseAuthorization.Recipient.PATIENT:
        doc.field("Recipient", "The patient, through their Lightbox account")
    else:
        doc.field("Provider", auth.provider_name)
        doc.field("Organisation", auth.provider_organisation)
        doc.field("Provider email", auth.provider_email)

    doc.heading("5. Purpose and expiry")
    doc.field("Purpose", auth.purpose)
    doc.field("This authorization expires on", _date(auth.expires_on))
    doc.field("or on this event", auth.expiry_event)

    doc.heading("6. Statements")
    for title, text in statements(auth):
        doc.field(title, text)

    doc.heading("7. Signature")
    if auth.representative_name:
        doc.field("Signed by a personal representative", auth.representative_name)
        doc.field("Authority to act for the patient", auth.representative_authority)
    doc.image(signature_png)
    doc.field("Typed name", auth.typed_signature)
    signed_at = timezone.localtime(auth.signed_at)
    doc.field("Signed", f"{signed_at:%d %B %Y, %H:%M:%S %Z}")
    doc.field("Signed from address", auth.signed_from or "unknown")
    return doc.output()
