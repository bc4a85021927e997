"""Orthanc, a real PACS, pushes studies to Lightbox with C-STORE."""

from __future__ import annotations

import pytest

from sharing.dicom.synthetic import SyntheticPatient, cr_image, ct_series, mr_series, write_study
from sharing.models import Instance, Series, Study
from tests.support.network import free_port
from tests.support.orthanc import running_orthanc

pytestmark = pytest.mark.integration


def test_orthanc_pushes_studies_that_arrive_indexed_and_thumbnailed(scp, tmp_path):
    patient = SyntheticPatient(patient_id="PACS-42", issuer="HOSP")
    studies = [
        ct_series(patient, slices=6, size=64),
        mr_series(patient, slices=3, size=32),
        cr_image(patient, rows=128, cols=100),
    ]
    modalities = {"lightbox": (scp.ae_title, "127.0.0.1", scp.port)}
    with running_orthanc(
        tmp_path / "orthanc", http_port=free_port(), dicom_port=free_port(), modalities=modalities
    ) as orthanc:
        study_ids = set()
        for index, datasets in enumerate(studies):
            for path in write_study(datasets, tmp_path / f"study-{index}"):
                study_ids.add(orthanc.upload(path)["ParentStudy"])

        response = orthanc.store_to("lightbox", sorted(study_ids))

    expected = sum(len(datasets) for datasets in studies)
    assert response["InstancesCount"] == expected
    assert response["FailedInstancesCount"] == 0
    assert Instance.objects.filter(state=Instance.State.INDEXED).count() == expected
    assert Study.objects.count() == 3
    assert not Series.objects.filter(thumbnail_key="").exists()
    assert all(s.patient.patient_id == "PACS-42" for s in Study.objects.select_related("patient"))
