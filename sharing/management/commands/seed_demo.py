"""``manage.py seed_demo``: demo accounts and synthetic studies, received through the real SCP.

The studies are generated with pydicom and sent over DICOM to a Storage SCP started for the
purpose (the same code as ``run_scp``), so the demo exercises the whole ingest pipeline.
"""

from __future__ import annotations

import datetime
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from allauth.account.models import EmailAddress
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from sharing.dicom.scu import send_files
from sharing.dicom.synthetic import SyntheticPatient, cr_image, demo_studies, write_study
from sharing.models import Facility, PacsNode, Patient, User
from sharing.scp.server import make_server

DEMO_PATIENT = SyntheticPatient(
    patient_id="LBX-0001", issuer="LIGHTBOX-DEMO", name="DEMO^PATIENT", birth_date="19800214", sex="F"
)
# Images for someone without an account: they wait in the records staff's list.
UNLINKED_PATIENT = SyntheticPatient(
    patient_id="LBX-0002", issuer="LIGHTBOX-DEMO", name="SAMPLE^UNCLAIMED", birth_date="19711103", sex="M"
)


class Command(BaseCommand):
    help = "Create demo accounts and send synthetic studies through the Storage SCP."

    def handle(self, *args: Any, **options: Any) -> None:
        password = os.environ.get("LIGHTBOX_DEMO_PASSWORD", "lightbox-demo")
        patient_user = _demo_user("patient@example.com", password, role=User.Role.PATIENT, first_name="Demo")
        _demo_user("staff@example.com", password, role=User.Role.RECORDS, first_name="Records", is_staff=True)
        patient, _ = Patient.objects.get_or_create(
            patient_id=DEMO_PATIENT.patient_id,
            issuer=DEMO_PATIENT.issuer,
            upload_owner=None,
            clash_of=None,
            defaults={"birth_date": datetime.date(1980, 2, 14), "sex": "F"},
        )
        if patient.user_id is None:
            patient.user = patient_user
            patient.save(update_fields=["user", "updated_at"])
        self._demo_facility()
        if patient.studies.exists():
            self.stdout.write("Demo studies already present; nothing sent.")
            return

        studies = [*demo_studies(DEMO_PATIENT), cr_image(UNLINKED_PATIENT)]
        # A private SCP on a loopback port for the seed alone: any calling AE, whatever the list.
        server = make_server(host="127.0.0.1", port=0, ae_title="LIGHTBOX", allowed_aes=[])
        port = server.server_address[1]
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            with tempfile.TemporaryDirectory() as directory:
                for index, datasets in enumerate(studies):
                    paths = write_study(datasets, Path(directory) / f"study-{index}")
                    result = send_files(paths, host="127.0.0.1", port=port, called_ae="LIGHTBOX")
                    if result.failures:
                        raise CommandError(f"the SCP refused {len(result.failures)} demo instance(s)")
                    self.stdout.write(f"Sent study {index + 1}/{len(studies)}: {result.sent} instance(s)")
        finally:
            server.shutdown()
        self.stdout.write(self.style.SUCCESS("Demo data received through the Storage SCP."))

    def _demo_facility(self) -> None:
        """The facility patients pick on a release request, with the demo PACS if one is named
        (``LIGHTBOX_DEMO_PACS=AE@host:port``; docker/compose.yml names its Orthanc)."""
        pacs = None
        spec = os.environ.get("LIGHTBOX_DEMO_PACS", "")
        if spec:
            try:
                ae_title, address = spec.split("@", 1)
                host, port = address.rsplit(":", 1)
                pacs, _ = PacsNode.objects.get_or_create(
                    name="Demo PACS", defaults={"ae_title": ae_title, "host": host, "port": int(port)}
                )
            except ValueError as exc:
                raise CommandError(f"LIGHTBOX_DEMO_PACS must look like AE@host:port, not {spec!r}") from exc
        Facility.objects.get_or_create(
            name="Lightbox Demo Hospital",
            defaults={
                "issuer": DEMO_PATIENT.issuer,
                "pacs": pacs,
                "records_contact": "Health Information Management, Lightbox Demo Hospital (records@example.com)",
            },
        )


@transaction.atomic
def _demo_user(email: str, password: str, *, role: str, first_name: str, is_staff: bool = False) -> User:
    user, created = User.objects.get_or_create(
        email=email, defaults={"role": role, "first_name": first_name, "is_staff": is_staff}
    )
    if created:
        user.set_password(password)
        user.save()
    EmailAddress.objects.update_or_create(
        user=user, email=email, defaults={"verified": True, "primary": True}
    )
    return user
