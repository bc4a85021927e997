from __future__ import annotations

import logging
import warnings

import pytest

from sharing.dicom.header import read_header
from sharing.dicom.synthetic import SyntheticPatient, ct_series, write_part10


def test_reading_a_malformed_name_puts_no_patient_data_in_logs_or_warnings(tmp_path, caplog):
    ds = ct_series(SyntheticPatient(patient_id="LOG-1"), slices=1, size=16)[0]
    ds.PatientName = "SECRET" + "X" * 400  # longer than PN allows: pydicom would warn, quoting it
    ds.PatientBirthDate = "SECRET-NOT-A-DATE"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = write_part10(ds, tmp_path / "bad-name.dcm")

    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.DEBUG):
        warnings.simplefilter("always")
        header = read_header(path)

    assert header.patient_name.startswith("SECRET")
    assert "SECRET" not in caplog.text
    assert not [w for w in caught if "SECRET" in str(w.message)]


@pytest.fixture(autouse=True)
def _django_ready(settings):
    """The app's ready() configures pydicom; the settings fixture makes sure Django is set up."""
