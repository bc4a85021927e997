"""WADO-RS beyond plain frames: JPEG fragments without offset tables, deflated and big endian
frames, bulk data other than pixels, and CDA reports on the study page."""

from __future__ import annotations

import datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.utils import timezone
from pydicom.dataset import Dataset

from sharing.dicom.synthetic import cda_report, ct_series, new_uid
from sharing.dicomweb.wado import metadata_cache_key
from sharing.models import AuditEvent, Instance, Share, Study
from sharing.services.shares import share_create
from sharing.views.library import _report_view
from tests.support.clients import Client
from tests.support.dicomweb import EXPLICIT_LE, RAW_FRAME_ACCEPT, instance_url, parts
from tests.support.factories import ingest, make_study
from tests.support.frames import (
    PATIENT,
    big_endian_ct,
    deflated_ct,
    grey_frames,
    jpeg_multiframe,
    padded,
    write,
)

pytestmark = pytest.mark.django_db(transaction=True)
ANY_SYNTAX = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
JPEG_ACCEPT = 'multipart/related; type="image/jpeg"; transfer-syntax=*'
BULK_ACCEPT = 'multipart/related; type="application/octet-stream"'
ICC_PROFILE = bytes(range(256)) * 300  # 76,800 bytes: over the 64 KiB inline limit
NESTED_VALUE = b"\x5a\xa5" * 40_000


def receive(tmp_path: Path, datasets: list[Dataset], name: str) -> Study:
    folder = tmp_path / name
    folder.mkdir()
    ingest([write(ds, folder / f"{index:05d}.dcm") for index, ds in enumerate(datasets, 1)])
    return Study.objects.get(study_instance_uid=str(datasets[0].StudyInstanceUID))


# --------------------------------------------------------------------------- frames


def test_jpeg_frames_without_an_offset_table_are_sent_as_stored(client, tmp_path, jane):
    ds, encoded = jpeg_multiframe(frames=3, fragments_per_frame=3)
    study = receive(tmp_path, [ds], "jpeg")
    client.force_login(jane)

    response = client.get(instance_url("dicomweb-frames", study, ds, "3,1"), headers={"Accept": JPEG_ACCEPT})

    assert response.status_code == HTTPStatus.OK
    assert 'type="image/jpeg"' in response["Content-Type"]
    found = parts(response)
    assert [content_type for content_type, _ in found] == [
        "image/jpeg; transfer-syntax=1.2.840.10008.1.2.4.50"
    ] * 2
    assert [data for _, data in found] == [padded(encoded[2]), padded(encoded[0])]


def test_jpeg_frames_without_an_offset_table_are_decoded_on_request(client, tmp_path, jane):
    ds, _ = jpeg_multiframe(frames=3, fragments_per_frame=3)
    study = receive(tmp_path, [ds], "jpeg")
    client.force_login(jane)

    response = client.get(
        instance_url("dicomweb-frames", study, ds, "2"), headers={"Accept": RAW_FRAME_ACCEPT}
    )

    [(content_type, data)] = parts(response)
    assert content_type == f"application/octet-stream; transfer-syntax={EXPLICIT_LE}"
    decoded = np.frombuffer(data, dtype=np.uint8).reshape(32, 48)
    assert np.abs(decoded.astype(int) - grey_frames(3)[1]).mean() < 3


def test_frames_that_cannot_be_split_fall_back_to_decoding(client, tmp_path, jane):
    ds, _ = jpeg_multiframe(frames=3, fragments_per_frame=2)
    ds.NumberOfFrames = 2  # markers find three frames: which two are meant cannot be told
    study = receive(tmp_path, [ds], "jpeg")
    client.force_login(jane)
    url = instance_url("dicomweb-frames", study, ds, "1")

    stored_only = client.get(url, headers={"Accept": JPEG_ACCEPT})
    anything = client.get(url, headers={"Accept": ANY_SYNTAX})

    assert stored_only.status_code == HTTPStatus.NOT_ACCEPTABLE
    [(content_type, data)] = parts(anything)
    assert content_type == f"application/octet-stream; transfer-syntax={EXPLICIT_LE}"
    decoded = np.frombuffer(data, dtype=np.uint8).reshape(32, 48)
    assert np.abs(decoded.astype(int) - grey_frames(3)[0]).mean() < 3


@pytest.mark.parametrize("build", [big_endian_ct, deflated_ct], ids=["big endian", "deflated"])
@pytest.mark.parametrize("accept", ["", ANY_SYNTAX, RAW_FRAME_ACCEPT, "*/*"])
def test_deflated_and_big_endian_frames_are_little_endian_bytes(client, tmp_path, jane, build, accept):
    ds = build()
    study = receive(tmp_path, [ds], "ct")
    client.force_login(jane)
    expected = ct_series(PATIENT, slices=1, size=16)[0].pixel_array

    response = client.get(instance_url("dicomweb-frames", study, ds, "1"), headers={"Accept": accept})

    assert response.status_code == HTTPStatus.OK
    [(content_type, data)] = parts(response)
    assert content_type == f"application/octet-stream; transfer-syntax={EXPLICIT_LE}"
    assert data == expected.astype("<u2").tobytes()


def test_big_endian_frames_are_not_sent_big_endian(client, tmp_path, jane):
    ds = big_endian_ct()
    study = receive(tmp_path, [ds], "ct")
    client.force_login(jane)
    accept = 'multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.2'

    response = client.get(instance_url("dicomweb-frames", study, ds, "1"), headers={"Accept": accept})

    assert response.status_code == HTTPStatus.NOT_ACCEPTABLE


def test_a_frame_past_the_last_of_a_deflated_instance_is_not_found(client, tmp_path, jane):
    ds = deflated_ct()
    study = receive(tmp_path, [ds], "ct")
    client.force_login(jane)

    assert client.get(instance_url("dicomweb-frames", study, ds, "2")).status_code == HTTPStatus.NOT_FOUND


# --------------------------------------------------------------------------- bulk data


@pytest.fixture
def with_bulk_data(patient) -> list[Dataset]:
    """A CT slice with a large ICC profile and, inside a sequence, another large binary."""
    ds = ct_series(patient, slices=1, size=16, study_date="20260115")[0]
    ds.ICCProfile = ICC_PROFILE
    item = Dataset()
    item.ICCProfile = NESTED_VALUE
    ds.OpticalPathSequence = [Dataset(), item]
    return [ds]


@pytest.fixture
def janes_bulk_study(tmp_path, jane, with_bulk_data) -> Study:
    return receive(tmp_path, with_bulk_data, "bulk")


def metadata_of(client: Client, root: str, study: Study, ds: Dataset) -> dict[str, Any]:
    url = f"{root}/studies/{study.study_instance_uid}/series/{ds.SeriesInstanceUID}/metadata"
    response = client.get(url)
    assert response.status_code == HTTPStatus.OK
    [item] = response.json()
    result: dict[str, Any] = item
    return result


def bulk(client: Client, uri: str, accept: str = BULK_ACCEPT):
    return client.get(uri.removeprefix("http://testserver"), headers={"Accept": accept})


def test_metadata_points_at_large_binaries_and_they_are_served(
    client, jane, janes_bulk_study, with_bulk_data
):
    client.force_login(jane)
    [ds] = with_bulk_data
    base = "http://testserver" + instance_url("dicomweb-instance", janes_bulk_study, ds)

    item = metadata_of(client, "/dicomweb", janes_bulk_study, ds)
    top = item["00282000"]["BulkDataURI"]
    nested = item["00480105"]["Value"][1]["00282000"]["BulkDataURI"]
    top_response, nested_response = bulk(client, top), bulk(client, nested)

    assert top == f"{base}/bulkdata/00282000"
    assert nested == f"{base}/bulkdata/00480105.1.00282000"
    assert item["00282000"]["vr"] == "OB"
    assert 'type="application/octet-stream"' in top_response["Content-Type"]
    assert parts(top_response) == [("application/octet-stream", ICC_PROFILE)]
    assert parts(nested_response) == [("application/octet-stream", NESTED_VALUE)]
    assert top_response["Cache-Control"].startswith("private")
    events = AuditEvent.objects.filter(action=AuditEvent.Action.VIEW, detail__dicomweb="bulkdata")
    assert events.count() == 2


def test_metadata_caches_of_the_older_format_are_not_served(janes_bulk_study):
    series = janes_bulk_study.series.get()

    assert metadata_cache_key(series) != f"metadata/series/{series.pk}/1.json"


@pytest.mark.parametrize("path", ["00282001", "00480105.5.00282000", "00100010", "7FE00010", "00480105.0"])
def test_bulk_data_that_is_not_there_is_not_found(client, jane, janes_bulk_study, with_bulk_data, path):
    client.force_login(jane)
    url = instance_url("dicomweb-instance", janes_bulk_study, with_bulk_data[0]) + f"/bulkdata/{path}"

    assert bulk(client, url).status_code == HTTPStatus.NOT_FOUND


def test_bulk_data_is_not_sent_as_anything_else(client, jane, janes_bulk_study, with_bulk_data):
    client.force_login(jane)
    url = instance_url("dicomweb-instance", janes_bulk_study, with_bulk_data[0]) + "/bulkdata/00282000"

    assert bulk(client, url, accept="application/dicom+json").status_code == HTTPStatus.NOT_ACCEPTABLE


def test_bulk_data_is_for_the_studys_viewers_only(client, tmp_path, john, janes_bulk_study, with_bulk_data):
    url = instance_url("dicomweb-instance", janes_bulk_study, with_bulk_data[0]) + "/bulkdata/00282000"

    anonymous = bulk(client, url)
    client.force_login(john)
    another_patient = bulk(client, url)

    assert anonymous.status_code == HTTPStatus.UNAUTHORIZED
    assert another_patient.status_code == HTTPStatus.NOT_FOUND
    assert ICC_PROFILE[:512] not in another_patient.content


def test_a_share_holder_gets_bulk_data_under_the_shares_root(jane, janes_bulk_study, with_bulk_data):
    [ds] = with_bulk_data
    created = share_create(
        owner=jane,
        studies=[janes_bulk_study],
        expires_at=timezone.now() + datetime.timedelta(days=1),
        protection=Share.Protection.CODE,
        allow_download=True,
    )
    holder = Client()
    assert holder.post(f"/s/{created.token}", {"answer": created.code}).status_code == HTTPStatus.FOUND

    item = metadata_of(holder, "/s/dicomweb", janes_bulk_study, ds)
    uri = item["00480105"]["Value"][1]["00282000"]["BulkDataURI"]
    response = bulk(holder, uri)

    assert uri.startswith("http://testserver/s/dicomweb/studies/")
    assert parts(response) == [("application/octet-stream", NESTED_VALUE)]
    assert response["Cache-Control"] == "no-store"


def test_a_share_holder_gets_no_bulk_data_of_other_studies(
    tmp_path, patient, jane, janes_bulk_study, with_bulk_data
):
    other = make_study(tmp_path, patient, "other", description="OTHER")
    created = share_create(
        owner=jane,
        studies=[other],
        expires_at=timezone.now() + datetime.timedelta(days=1),
        protection=Share.Protection.CODE,
        allow_download=True,
    )
    holder = Client()
    assert holder.post(f"/s/{created.token}", {"answer": created.code}).status_code == HTTPStatus.FOUND
    url = "/s" + instance_url("dicomweb-instance", janes_bulk_study, with_bulk_data[0]) + "/bulkdata/00282000"

    assert bulk(holder, url).status_code == HTTPStatus.NOT_FOUND


# --------------------------------------------------------------------------- CDA on the study page


def test_a_cda_report_is_shown_as_text(tmp_path, patient, jane):
    uid = new_uid()
    cda = cda_report(
        patient, study_uid=uid, text="The lungs are clear.\n\nNo effusion.", impression="Normal."
    )
    receive(tmp_path, [cda], "cda")
    instance = Instance.objects.get(sop_instance_uid=str(cda.SOPInstanceUID))

    view = _report_view(instance)

    assert not view.unreadable
    assert view.paragraphs[0] == "Radiology report"
    assert "FINDINGS\nThe lungs are clear.\nNo effusion." in view.paragraphs
    assert "IMPRESSION\nNormal." in view.paragraphs


def test_a_cda_report_with_a_doctype_is_not_parsed(tmp_path, patient, jane):
    cda = cda_report(patient, study_uid=new_uid(), text="Text.")
    document = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><ClinicalDocument>&a;</ClinicalDocument>'
    )
    cda.EncapsulatedDocument, cda.EncapsulatedDocumentLength = (
        document + b" " * (len(document) % 2),
        len(document),
    )
    receive(tmp_path, [cda], "cda")

    view = _report_view(Instance.objects.get(sop_instance_uid=str(cda.SOPInstanceUID)))

    assert view.unreadable


def test_bulk_data_words_of_a_big_endian_instance_come_little_endian(client, tmp_path, jane):
    ds = big_endian_ct()
    words = np.arange(40_000, dtype=np.uint16)
    ds.RedPaletteColorLookupTableData = words.astype(">u2").tobytes()
    ds["RedPaletteColorLookupTableData"].VR = "OW"
    study = receive(tmp_path, [ds], "big")
    client.force_login(jane)

    item = metadata_of(client, "/dicomweb", study, ds)
    response = bulk(client, item["00281201"]["BulkDataURI"])

    assert parts(response) == [("application/octet-stream", words.astype("<u2").tobytes())]
