"""Release authorizations as a patient signs them, and the facility and studies they name."""

from __future__ import annotations

import base64
import datetime
import io

from django.utils import timezone
from PIL import Image, ImageDraw

from sharing.models import Facility, Patient, ReleaseAuthorization, Study, User
from sharing.services.audit import Client
from sharing.services.releases import AuthorizationDetails, authorization_sign

ADDR = "203.0.113.7"
CLIENT = Client(address=ADDR, user_agent="Mozilla/5.0 (test)")


def signature_png() -> bytes:
    image = Image.new("RGBA", (600, 200), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.line([(20, 150), (120, 40), (220, 160), (340, 50), (560, 120)], fill=(17, 17, 17, 255), width=4)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def signature_data_url() -> str:
    return "data:image/png;base64," + base64.b64encode(signature_png()).decode()


def make_facility(**extra: object) -> Facility:
    defaults: dict[str, object] = {
        "name": "General Hospital",
        "issuer": "GENERAL",
        "records_contact": "Records Office, 1 Main St, records@general.example",
    }
    defaults.update(extra)
    return Facility.objects.create(**defaults)


def details(facility: Facility, **extra: object) -> AuthorizationDetails:
    values: dict[str, object] = {
        "legal_name": "Jane Doe",
        "birth_date": datetime.date(1980, 1, 1),
        "contact_email": "jane@example.com",
        "facility": facility,
        "scope_kind": ReleaseAuthorization.ScopeKind.EXAMS,
        "exams": "CT chest, January 2026",
        "recipient_kind": ReleaseAuthorization.Recipient.PATIENT,
        "purpose": "Continuing care with my oncologist",
        "typed_signature": "Jane Doe",
        "expires_on": timezone.localdate() + datetime.timedelta(days=180),
    }
    values.update(extra)
    return AuthorizationDetails(**values)  # type: ignore[arg-type]


def sign(user: User, facility: Facility, **extra: object) -> ReleaseAuthorization:
    return authorization_sign(
        requester=user, details=details(facility, **extra), signature_png=signature_png(), client=CLIENT
    )


def quick_study(
    patient: Patient, uid: str, *, study_date: str = "2026-01-15", outside: bool = False
) -> Study:
    now = timezone.now()
    return Study.objects.create(
        study_instance_uid=uid,
        patient=patient,
        study_date=datetime.date.fromisoformat(study_date),
        description="CT CHEST",
        modalities="CT",
        number_of_instances=3,
        is_outside=outside,
        first_received_at=now - datetime.timedelta(hours=1),
        last_received_at=now - datetime.timedelta(hours=1),
    )
