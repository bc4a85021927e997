"""Whose images these are: a patient's upload never joins someone else's record, and the hospital's
instances that clash with a linked patient's identity wait for records staff."""

from __future__ import annotations

import datetime
from pathlib import Path

import pydicom
import pytest
from django.core.exceptions import ValidationError
from pydicom.dataset import Dataset
from pydicom.uid import UID

from sharing.dicom.synthetic import SyntheticPatient, ct_series, write_part10, write_study
from sharing.models import Instance, InstanceConflict, Patient, Series, Study, User
from sharing.selectors import studies_awaiting_reconciliation, study_list_for_user
from sharing.selectors.releases import studies_unreconciled
from sharing.services.audit import NO_CLIENT
from sharing.services.receiving import ReceiveOutcome, Sender, instance_receive
from sharing.services.releases import study_reconcile_assign, study_reconcile_reject
from tests.support.factories import PASSWORD, records_staff

pytestmark = pytest.mark.django_db(transaction=True)
PACS = Sender(source=Study.Source.DIMSE, label="PACS@10.0.0.5")
JANE = SyntheticPatient(patient_id="MRN-1001", issuer="GENERAL", name="DOE^JANE", birth_date="19800101")
MALLORY = SyntheticPatient(
    patient_id="MRN-6666", issuer="ELSEWHERE", name="ROE^MALLORY", birth_date="19900909"
)


def receive(paths: list[Path], sender: Sender = PACS) -> list[ReceiveOutcome]:
    return [instance_receive(path=path, sender=sender).outcome for path in paths]


class Uploader(Sender):
    user: User


def uploader(email: str = "mallory@example.com") -> Uploader:
    user = User.objects.create_user(email, PASSWORD)
    return Uploader(source=Study.Source.UPLOAD, label=user.email, user=user)


def linked(email: str, patient: SyntheticPatient) -> User:
    user = User.objects.create_user(email, PASSWORD)
    Patient.objects.create(patient_id=patient.patient_id, issuer=patient.issuer, user=user)
    return user


def as_patient(datasets: list[Dataset], patient: SyntheticPatient) -> list[Dataset]:
    for ds in datasets:
        ds.PatientID, ds.PatientName, ds.PatientBirthDate = (
            patient.patient_id,
            patient.name,
            patient.birth_date,
        )
        if patient.issuer:
            ds.IssuerOfPatientID = patient.issuer
        elif "IssuerOfPatientID" in ds:
            del ds.IssuerOfPatientID
    return datasets


def reusing_uids(of: list[Dataset], patient: SyntheticPatient, description: str) -> list[Dataset]:
    """New images of ``patient`` under the Study and Series Instance UIDs of ``of``."""
    datasets = ct_series(
        patient, slices=2, size=32, study_uid=str(of[0].StudyInstanceUID), description=description
    )
    for ds in datasets:
        ds.SeriesInstanceUID = of[0].SeriesInstanceUID
    return datasets


@pytest.fixture
def jane() -> User:
    return linked("jane@example.com", JANE)


@pytest.fixture
def janes_ct(tmp_path, jane) -> list[Dataset]:
    datasets = ct_series(JANE, slices=3, size=32)
    assert set(receive(write_study(datasets, tmp_path / "janes"))) == {ReceiveOutcome.STORED}
    return datasets


def janes_study(janes_ct: list[Dataset]) -> Study:
    return Study.objects.get(
        study_instance_uid=str(janes_ct[0].StudyInstanceUID),
        patient__user__email="jane@example.com",
        patient__upload_owner__isnull=True,
    )


# --- A patient's upload ----------------------------------------------------------------------------


def test_an_upload_naming_another_patients_id_and_issuer_gets_records_of_its_own(tmp_path, jane, janes_ct):
    mallory = uploader()
    files = write_study(ct_series(JANE, slices=2, size=32, description="NOT JANES"), tmp_path / "upload")

    assert set(receive(files, mallory)) == {ReceiveOutcome.STORED}

    upload = Study.objects.get(description="NOT JANES")
    assert upload.patient.upload_owner == mallory.user
    assert upload.patient.user is None
    assert upload.patient != janes_study(janes_ct).patient
    assert upload.is_outside
    assert list(study_list_for_user(user=jane)) == [janes_study(janes_ct)]
    assert not study_list_for_user(user=mallory.user).exists()
    assert upload in studies_awaiting_reconciliation(user=records_staff())


def test_an_upload_reusing_another_patients_study_and_series_uids_is_kept_apart_and_flagged(
    tmp_path, jane, janes_ct
):
    mallory = uploader()
    files = write_study(reusing_uids(janes_ct, MALLORY, "MALLORY UPLOAD"), tmp_path / "upload")

    assert set(receive(files, mallory)) == {ReceiveOutcome.STORED}

    janes = janes_study(janes_ct)
    assert janes.number_of_instances == 3
    assert set(Instance.objects.filter(series__study=janes).values_list("patient_name", flat=True)) == {
        "DOE^JANE"
    }
    upload = Study.objects.get(description="MALLORY UPLOAD")
    assert upload.study_instance_uid == janes.study_instance_uid
    assert upload.pk != janes.pk
    assert upload.number_of_instances == 2
    assert upload.is_outside
    assert "reuses the Study Instance UID" in upload.held_reason
    assert Series.objects.filter(series_instance_uid=janes_ct[0].SeriesInstanceUID).count() == 2
    assert upload in studies_unreconciled(user=records_staff())


def test_an_upload_reusing_sop_instance_uids_is_stored_as_the_uploaders_own(tmp_path, jane, janes_ct):
    mallory = uploader()
    copies = as_patient([pydicom.dcmread(p) for p in sorted((tmp_path / "janes").iterdir())], MALLORY)

    assert set(receive(write_study(copies, tmp_path / "upload"), mallory)) == {ReceiveOutcome.STORED}

    assert not InstanceConflict.objects.exists()
    assert Instance.objects.filter(upload_owner__isnull=True).count() == 3
    assert Instance.objects.filter(upload_owner=mallory.user).count() == 3
    assert janes_study(janes_ct).number_of_instances == 3
    assert set(
        Instance.objects.filter(series__study=janes_study(janes_ct)).values_list("patient_name", flat=True)
    ) == {"DOE^JANE"}


def test_an_uploader_sending_the_same_files_again_stores_them_once(tmp_path, janes_ct):
    mallory = uploader()
    files = write_study(ct_series(MALLORY, slices=2, size=32), tmp_path / "upload")

    assert set(receive(files, mallory)) == {ReceiveOutcome.STORED}
    assert set(receive(files, mallory)) == {ReceiveOutcome.DUPLICATE}
    assert Study.objects.filter(patient__upload_owner=mallory.user).get().number_of_instances == 2


def test_two_patients_uploading_the_same_disc_each_get_their_own_copy(tmp_path):
    files = write_study(ct_series(MALLORY, slices=2, size=32), tmp_path / "disc")
    first, second = uploader("one@example.com"), uploader("two@example.com")

    assert set(receive(files, first)) == {ReceiveOutcome.STORED}
    assert set(receive(files, second)) == {ReceiveOutcome.STORED}

    assert Study.objects.filter(patient__upload_owner=first.user).count() == 1
    assert Study.objects.filter(patient__upload_owner=second.user).count() == 1


def test_staff_uploads_remain_hospital_studies_that_join_the_patients_record(tmp_path, jane, janes_ct):
    staff = records_staff()
    sender = Sender(source=Study.Source.UPLOAD, label=staff.email, user=staff)
    more = ct_series(JANE, slices=2, size=32, study_uid=str(janes_ct[0].StudyInstanceUID))

    assert set(receive(write_study(more, tmp_path / "more"), sender)) == {ReceiveOutcome.STORED}

    assert janes_study(janes_ct).number_of_instances == 5
    assert Study.objects.count() == 1


# --- The hospital's instances that clash with a linked patient ---------------------------------------


NO_ISSUER_JANE = SyntheticPatient(patient_id="MRN-3003", name="DOE^JANE", birth_date="19800101")


@pytest.mark.parametrize(
    "impostor",
    [
        SyntheticPatient(patient_id="MRN-3003", name="ROE^RICHARD", birth_date="19800101"),
        SyntheticPatient(patient_id="MRN-3003", name="DOE^JANE", birth_date="19550505"),
    ],
    ids=["another-name", "another-birth-date"],
)
def test_the_same_patient_id_without_issuer_but_other_demographics_waits_for_staff(tmp_path, impostor):
    jane = linked("jane@example.com", NO_ISSUER_JANE)
    receive(write_study(ct_series(NO_ISSUER_JANE, slices=2, size=32), tmp_path / "janes"))
    theirs = ct_series(impostor, slices=3, size=32, description="SOMEONE ELSE")

    assert set(receive(write_study(theirs[:1], tmp_path / "first"))) == {ReceiveOutcome.STORED}
    assert set(receive(write_study(theirs[1:], tmp_path / "rest"))) == {ReceiveOutcome.STORED}

    held = Study.objects.get(description="SOMEONE ELSE")
    assert held.number_of_instances == 3
    assert held.patient.user is None
    assert held.patient.clash_of == Patient.objects.get(user=jane)
    assert "MRN-3003 (no issuer) is linked to an account" in held.held_reason
    assert [s.description for s in study_list_for_user(user=jane)] == ["CT CHEST W/O CONTRAST"]
    assert held in studies_unreconciled(user=records_staff())


def test_the_same_patient_id_without_issuer_and_a_reused_study_uid_does_not_join_the_linked_study(tmp_path):
    jane = linked("jane@example.com", NO_ISSUER_JANE)
    janes = ct_series(NO_ISSUER_JANE, slices=2, size=32)
    receive(write_study(janes, tmp_path / "janes"))
    impostor = SyntheticPatient(patient_id="MRN-3003", name="ROE^RICHARD", birth_date="19551111")

    receive(write_study(reusing_uids(janes, impostor, "SOMEONE ELSE"), tmp_path / "theirs"))

    [own] = study_list_for_user(user=jane)
    assert own.number_of_instances == 2
    assert set(Instance.objects.filter(series__study=own).values_list("patient_name", flat=True)) == {
        "DOE^JANE"
    }
    assert Study.objects.get(description="SOMEONE ELSE").held_reason


def test_the_same_patient_written_another_way_still_joins_the_record(tmp_path):
    jane = linked("jane@example.com", NO_ISSUER_JANE)
    receive(write_study(ct_series(NO_ISSUER_JANE, slices=2, size=32), tmp_path / "janes"))
    again = as_patient(ct_series(NO_ISSUER_JANE, slices=2, size=32, description="FOLLOW-UP"), NO_ISSUER_JANE)
    for ds in again:
        ds.PatientName = "doe^jane^^"

    receive(write_study(again, tmp_path / "again"))

    assert {s.description for s in study_list_for_user(user=jane)} == {"CT CHEST W/O CONTRAST", "FOLLOW-UP"}
    assert not Study.objects.exclude(held_reason="").exists()


def test_instances_whose_study_uid_belongs_to_another_patient_wait_for_staff(tmp_path, jane, janes_ct):
    john_patient = SyntheticPatient(patient_id="MRN-2002", issuer="GENERAL", name="ROE^JOHN")
    john = linked("john@example.com", john_patient)
    files = write_study(reusing_uids(janes_ct, john_patient, "JOHNS IMAGES"), tmp_path / "johns")

    assert set(receive(files)) == {ReceiveOutcome.STORED}

    janes = janes_study(janes_ct)
    assert janes.number_of_instances == 3
    assert set(Instance.objects.filter(series__study=janes).values_list("patient_name", flat=True)) == {
        "DOE^JANE"
    }
    held = Study.objects.get(description="JOHNS IMAGES")
    assert held.patient.user == john
    assert "already that of another patient's study" in held.held_reason
    assert not study_list_for_user(user=john).exists()
    assert held in studies_unreconciled(user=records_staff())


def test_an_instance_without_patient_id_is_stored_and_waits_for_staff(tmp_path, jane, janes_ct):
    datasets = ct_series(JANE, slices=2, size=32, description="NO ID")
    for ds in datasets:
        ds.PatientID = ""

    assert set(receive(write_study(datasets, tmp_path / "noid"))) == {ReceiveOutcome.STORED}

    held = Study.objects.get(description="NO ID")
    assert held.patient.patient_id == ""
    assert held.patient.user is None
    assert "no Patient ID" in held.held_reason
    assert held in studies_unreconciled(user=records_staff())
    assert list(study_list_for_user(user=jane)) == [janes_study(janes_ct)]


def test_staff_assigning_a_held_study_releases_it_to_the_patients_library(tmp_path, jane, janes_ct):
    datasets = ct_series(JANE, slices=2, size=32, description="NO ID")
    for ds in datasets:
        ds.PatientID = ""
    receive(write_study(datasets, tmp_path / "noid"))
    held = Study.objects.get(description="NO ID")

    study_reconcile_assign(
        study=held, patient=janes_study(janes_ct).patient, actor=records_staff(), client=NO_CLIENT
    )

    assert "NO ID" in {s.description for s in study_list_for_user(user=jane)}


def test_staff_cannot_assign_a_copy_to_a_patient_who_has_that_study_already(tmp_path, jane, janes_ct):
    receive(write_study(reusing_uids(janes_ct, MALLORY, "MALLORY UPLOAD"), tmp_path / "upload"), uploader())
    upload = Study.objects.get(description="MALLORY UPLOAD")

    with pytest.raises(ValidationError, match="already has a study with this Study Instance UID"):
        study_reconcile_assign(
            study=upload, patient=janes_study(janes_ct).patient, actor=records_staff(), client=NO_CLIENT
        )
    assert janes_study(janes_ct).number_of_instances == 3


# --- The same instance by two routes -----------------------------------------------------------------


def rewritten_meta(path: Path, target: Path) -> Path:
    """The file as another receiver writes it: the same data set, a file meta group of its own."""
    ds = pydicom.dcmread(path)
    ds.file_meta.ImplementationClassUID = UID("1.2.826.0.1.3680043.9.3811.2.0.0")
    ds.file_meta.ImplementationVersionName = "OTHER_RECEIVER"
    ds.file_meta.SourceApplicationEntityTitle = "PACS"
    return write_part10(ds, target)


def test_the_same_data_set_with_another_file_meta_group_is_the_same_instance(tmp_path, ct_files, staff):
    assert instance_receive(path=ct_files[0], sender=PACS).outcome is ReceiveOutcome.STORED
    copy = rewritten_meta(ct_files[0], tmp_path / "copy.dcm")
    assert copy.read_bytes() != ct_files[0].read_bytes()

    result = instance_receive(
        path=copy, sender=Sender(source=Study.Source.UPLOAD, label=staff.email, user=staff)
    )

    assert result.outcome is ReceiveOutcome.DUPLICATE
    assert not InstanceConflict.objects.exists()


def test_another_data_set_under_the_same_uid_is_still_a_conflict(tmp_path, ct_files, staff):
    assert instance_receive(path=ct_files[0], sender=PACS).outcome is ReceiveOutcome.STORED
    ds = pydicom.dcmread(rewritten_meta(ct_files[0], tmp_path / "copy.dcm"))
    ds.SeriesDescription = "CHANGED"

    result = instance_receive(path=write_part10(ds, tmp_path / "changed.dcm"), sender=PACS)

    assert result.outcome is ReceiveOutcome.CONFLICT


def test_the_record_set_apart_keeps_the_demographics_the_images_carry(tmp_path):
    jane = linked("jane@example.com", NO_ISSUER_JANE)
    receive(write_study(ct_series(NO_ISSUER_JANE, slices=1, size=32), tmp_path / "janes"))
    impostor = SyntheticPatient(patient_id="MRN-3003", name="ROE^RICHARD", birth_date="19551111")
    receive(write_study(ct_series(impostor, slices=1, size=32), tmp_path / "theirs"))

    apart = Patient.objects.get(clash_of__user=jane)
    assert (apart.name, apart.birth_date) == ("ROE^RICHARD", datetime.date(1955, 11, 11))


def test_rejecting_a_patients_copy_leaves_a_held_study_of_the_same_uid_in_the_queue(tmp_path, jane, janes_ct):
    receive(write_study(reusing_uids(janes_ct, MALLORY, "MALLORY UPLOAD"), tmp_path / "upload"), uploader())
    john_patient = SyntheticPatient(patient_id="MRN-2002", issuer="GENERAL", name="ROE^JOHN")
    receive(write_study(reusing_uids(janes_ct, john_patient, "JOHNS IMAGES"), tmp_path / "johns"))
    staff = records_staff()

    study_reconcile_reject(
        study=Study.objects.get(description="MALLORY UPLOAD"), actor=staff, reason="a copy", client=NO_CLIENT
    )

    assert [s.description for s in studies_unreconciled(user=staff)] == ["JOHNS IMAGES"]


def test_one_persons_records_at_two_hospitals_still_share_one_study(tmp_path, jane, janes_ct):
    other_mrn = SyntheticPatient(
        patient_id="H2-77", issuer="OTHER HOSPITAL", name="DOE^JANE", birth_date="19800101"
    )
    Patient.objects.create(patient_id=other_mrn.patient_id, issuer=other_mrn.issuer, user=jane)

    assert set(receive(write_study(reusing_uids(janes_ct, other_mrn, "SAME STUDY"), tmp_path / "h2"))) == {
        ReceiveOutcome.STORED
    }

    [study] = study_list_for_user(user=jane)
    assert study.number_of_instances == 5
    assert not Study.objects.exclude(held_reason="").exists()


def test_an_upload_by_a_patient_whose_record_is_linked_still_stays_out_of_their_hospital_study(
    tmp_path, jane, janes_ct
):
    sender = Sender(source=Study.Source.UPLOAD, label=jane.email, user=jane)
    Patient.objects.create(patient_id=JANE.patient_id, issuer=JANE.issuer, upload_owner=jane, user=jane)

    receive(write_study(reusing_uids(janes_ct, JANE, "HER OWN DISC"), tmp_path / "disc"), sender)

    assert janes_study(janes_ct).number_of_instances == 3
    disc = Study.objects.get(description="HER OWN DISC")
    assert disc.is_outside
    assert disc.held_reason
    assert disc not in study_list_for_user(user=jane)
