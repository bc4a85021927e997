"""A signed release request at a facility whose images a PACS holds."""

from __future__ import annotations

import datetime

from django.utils import timezone

from sharing.models import Facility, PacsNode, ReleaseAuthorization, User


def authorization(requester: User, node: PacsNode | None = None) -> ReleaseAuthorization:
    facility, _ = Facility.objects.get_or_create(
        name="General Hospital", defaults={"issuer": "HOSP", "pacs": node}
    )
    now = timezone.now()
    return ReleaseAuthorization.objects.create(
        requester=requester,
        legal_name="Jane Doe",
        birth_date=datetime.date(1980, 1, 1),
        mrn="PACS-1001",
        contact_email="jane@example.com",
        facility=facility,
        scope_kind=ReleaseAuthorization.ScopeKind.DATE_RANGE,
        recipient_kind=ReleaseAuthorization.Recipient.PATIENT,
        purpose="Personal use",
        typed_signature="Jane Doe",
        signature_key="sig",
        signed_at=now,
        received_at=now,
        due_on=now.date() + datetime.timedelta(days=30),
    )
