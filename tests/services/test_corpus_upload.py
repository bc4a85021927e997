"""Every file of the shared corpus through the browser-upload path, as one zip.

The DIMSE corpus test cannot send some files (no file meta, transfer syntaxes pynetdicom does not
know); uploaded, each must still get a clear outcome, and nothing may crash or be half-stored.
"""

from __future__ import annotations

import warnings
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from sharing.models import Instance, User
from sharing.services.uploads import FileStatus, upload_receive
from sharing.storage import get_store
from tests.support.corpus import CORPUS_DIR, corpus_files

pytestmark = [
    pytest.mark.corpus,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not (CORPUS_DIR / "MANIFEST.tsv").exists(), reason="no DICOM corpus beside the checkout"
    ),
]


def test_every_corpus_file_uploaded_in_a_zip_gets_an_outcome_and_stored_ones_are_whole(tmp_path):
    staff = User.objects.create_user("records@example.com", "pw-123456789", role=User.Role.RECORDS)
    files = corpus_files()
    archive = tmp_path / "corpus.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
        for index, item in enumerate(files):
            bundle.write(item.path, f"disc/{index:04d}.dcm")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = upload_receive(
            files=[SimpleUploadedFile("corpus.zip", archive.read_bytes(), "application/zip")], user=staff
        )

    assert len(report.files) == len(files)
    counts = {status: sum(1 for f in report.files if f.status is status) for status in FileStatus}
    assert counts[FileStatus.STORED] > 150
    assert all(f.reason for f in report.files if f.status in (FileStatus.REFUSED, FileStatus.SKIPPED))
    for instance in Instance.objects.all():
        assert get_store().head(instance.object_key).size == instance.size_bytes
    assert not Instance.objects.exclude(state=Instance.State.INDEXED).exists()
