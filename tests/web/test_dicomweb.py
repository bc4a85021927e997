from __future__ import annotations

import io
import json
import time
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
from dicomweb_client.api import DICOMwebClient
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.uid import RLELossless
from requests import Session

from sharing.dicom.synthetic import SyntheticPatient, ct_series, write_study
from sharing.models import AuditEvent, Instance, Study, User
from sharing.services import viewer_audit
from sharing.storage import get_store
from tests.support.dicomweb import EXPLICIT_LE, RAW_FRAME_ACCEPT, instance_url, parts
from tests.support.factories import ingest, make_study

pytestmark = pytest.mark.django_db(transaction=True)


def receive(tmp_path: Path, datasets: list[Dataset], name: str) -> Study:
    ingest(write_study(datasets, tmp_path / name))
    return Study.objects.get(study_instance_uid=str(datasets[0].StudyInstanceUID))


@pytest.fixture
def ct(patient) -> list[Dataset]:
    return ct_series(patient, slices=3, size=32, study_date="20260115")


@pytest.fixture
def rle(patient) -> list[Dataset]:
    return ct_series(patient, slices=2, size=32, study_date="20260301", transfer_syntax=RLELossless)


@pytest.fixture
def janes_ct(tmp_path, jane, ct) -> Study:
    return receive(tmp_path, ct, "ct")


@pytest.fixture
def janes_rle(tmp_path, jane, rle) -> Study:
    return receive(tmp_path, rle, "rle")


@pytest.fixture
def johns_study(tmp_path, john) -> Study:
    other = SyntheticPatient(patient_id="MRN-2002", issuer="GENERAL", name="ROE^JOHN")
    return make_study(tmp_path, other, "john", pdf=False)


def values(item: dict[str, Any], tag: str) -> list[Any]:
    found: list[Any] = item[tag].get("Value", [])
    return found


def test_the_owner_searches_their_studies_with_the_standard_attributes(client, jane, janes_ct, janes_rle):
    client.force_login(jane)

    response = client.get(reverse("stow"))

    assert response.status_code == HTTPStatus.OK
    assert response["Content-Type"] == "application/dicom+json"
    assert response["Cache-Control"].startswith("private")
    found = response.json()
    assert [values(s, "0020000D")[0] for s in found] == [
        janes_rle.study_instance_uid,
        janes_ct.study_instance_uid,
    ]
    ct = found[1]
    assert values(ct, "00080020") == ["20260115"]
    assert values(ct, "00080061") == ["CT"]
    assert values(ct, "00100010") == [{"Alphabetic": "DOE^JANE"}]
    assert values(ct, "00100020") == ["MRN-1001"]
    assert values(ct, "00100030") == ["19800101"]
    assert values(ct, "00201206") == [1]
    assert values(ct, "00201208") == [3]
    assert values(ct, "00081190")[0].endswith(f"/dicomweb/studies/{janes_ct.study_instance_uid}")
    event = AuditEvent.objects.get(action=AuditEvent.Action.QUERY)
    assert event.actor_user == jane
    assert event.detail["results"] == 2


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("StudyDate=20260101-20260131", ["ct"]),
        ("StudyDate=20260201-", ["rle"]),
        ("StudyDate=20260301", ["rle"]),
        ("ModalitiesInStudy=CT", ["rle", "ct"]),
        ("ModalitiesInStudy=MR", []),
        ("PatientID=MRN-1001", ["rle", "ct"]),
        ("PatientID=MRN-2002", []),
        ("00100020=MRN-1001&limit=1", ["rle"]),
        ("PatientName=DOE*&limit=1&offset=1", ["ct"]),
        ("PatientName=ROE*", []),
        ("PatientName=doe%5Ej*", ["rle", "ct"]),
        ("PatientName=D?E*", ["rle", "ct"]),
        ("PatientName=*JANE", ["rle", "ct"]),
        ("PatientName=DOE%25*", []),
        ("AccessionNumber=*", ["rle", "ct"]),
        ("includefield=all&fuzzymatching=false", ["rle", "ct"]),
    ],
)
def test_study_searches_filter(client, jane, janes_ct, janes_rle, query, expected):
    client.force_login(jane)
    uids = {"ct": janes_ct.study_instance_uid, "rle": janes_rle.study_instance_uid}

    response = client.get(reverse("stow") + "?" + query)

    assert response.status_code == HTTPStatus.OK
    assert [values(s, "0020000D")[0] for s in response.json()] == [uids[n] for n in expected]


@pytest.mark.parametrize("query", ["", "PatientID=MRN-1001", "PatientName=DOE*", "StudyDate=20260301-"])
def test_undated_studies_come_first_in_every_search(client, jane, janes_ct, janes_rle, query):
    # A search by patient sorts differently from the others (for PostgreSQL's plan), in the
    # same order, on PostgreSQL and on SQLite alike.
    Study.objects.filter(pk=janes_ct.pk).update(study_date=None)
    client.force_login(jane)

    found = client.get(reverse("stow") + "?" + query).json()

    expected = [janes_rle] if query.startswith("StudyDate") else [janes_ct, janes_rle]
    assert [values(s, "0020000D")[0] for s in found] == [s.study_instance_uid for s in expected]


def test_a_name_prefix_search_has_an_index_on_postgresql(db):
    if connection.vendor != "postgresql":
        pytest.skip("the index is PostgreSQL's")
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'patient_name_upper_prefix'")
        (definition,) = cursor.fetchone()
    assert "upper((name)::text) text_pattern_ops" in definition


def test_a_filter_by_uid_finds_exactly_that_study(client, jane, janes_ct, janes_rle):
    client.force_login(jane)

    response = client.get(reverse("stow"), {"StudyInstanceUID": janes_ct.study_instance_uid})

    assert [values(s, "0020000D")[0] for s in response.json()] == [janes_ct.study_instance_uid]


@pytest.mark.parametrize("query", ["StudyDate=2026-01-01", "limit=abc", "offset=-1", "StudyDate=-"])
def test_a_malformed_search_is_refused(client, jane, query):
    client.force_login(jane)

    assert client.get(reverse("stow") + "?" + query).status_code == HTTPStatus.BAD_REQUEST


def test_searching_studies_costs_the_same_queries_for_one_or_three(client, tmp_path, patient, jane, janes_ct):
    client.force_login(jane)
    client.get(reverse("stow"))  # the session's first request writes its clocks
    with CaptureQueriesContext(connection) as one:
        assert len(client.get(reverse("stow")).json()) == 1
    receive(tmp_path, ct_series(patient, slices=1, size=16, study_date="20250101"), "b")
    receive(tmp_path, ct_series(patient, slices=1, size=16, study_date="20240101"), "c")

    with CaptureQueriesContext(connection) as three:
        assert len(client.get(reverse("stow")).json()) == 3

    assert len(three) == len(one)


def test_series_and_instances_are_searched_within_the_study(client, jane, janes_ct, ct):
    client.force_login(jane)
    study_uid, series_uid = janes_ct.study_instance_uid, str(ct[0].SeriesInstanceUID)

    series = client.get(reverse("dicomweb-series-search", args=[study_uid])).json()
    only_mr = client.get(reverse("dicomweb-series-search", args=[study_uid]), {"Modality": "MR"}).json()
    instances = client.get(reverse("dicomweb-instance-search", args=[study_uid, series_uid])).json()
    second = client.get(
        reverse("dicomweb-instance-search", args=[study_uid, series_uid]), {"InstanceNumber": "2"}
    ).json()

    assert len(series) == 1
    assert values(series[0], "0020000E") == [series_uid]
    assert values(series[0], "00080060") == ["CT"]
    assert values(series[0], "00201209") == [3]
    assert only_mr == []
    assert [values(i, "00080018")[0] for i in instances] == [str(ds.SOPInstanceUID) for ds in ct]
    assert values(instances[0], "00280010") == [32]
    assert values(instances[0], "00280008") == [1]
    assert values(instances[0], "00080016") == [str(ct[0].SOPClassUID)]
    assert [values(i, "00200013") for i in second] == [[2]]
    assert (
        AuditEvent.objects.filter(action=AuditEvent.Action.QUERY, study_instance_uid=study_uid).count() == 4
    )


def test_a_repeated_search_is_audited_once_per_viewer(client, jane, staff, janes_ct):
    url = reverse("stow")
    client.force_login(jane)
    for _ in range(3):
        client.get(url, {"ModalitiesInStudy": "CT"})
    client.get(url, {"ModalitiesInStudy": "MR"})
    client.force_login(staff)
    client.get(url, {"ModalitiesInStudy": "CT"})

    searches = AuditEvent.objects.filter(action=AuditEvent.Action.QUERY).order_by("pk")
    assert [(event.actor_user, event.detail["results"]) for event in searches] == [
        (jane, 1),
        (jane, 0),
        (staff, 1),
    ]


def test_a_search_is_audited_again_once_its_half_hour_is_over(client, jane, janes_ct, monkeypatch):
    url = reverse("stow")
    client.force_login(jane)
    client.get(url)
    client.get(url)
    later = time.time() + viewer_audit.SUMMARY_SECONDS + 1
    # The cache entry has expired by then: only this process's memory of it is left to check.
    cache.delete_many(
        [key for key in viewer_audit._known if key.startswith(f"lightbox:audited:user:{jane.pk}:")]
    )
    monkeypatch.setattr(viewer_audit, "_clock", lambda: later)
    client.get(url)
    client.get(url)

    assert AuditEvent.objects.filter(action=AuditEvent.Action.QUERY, actor_user=jane).count() == 2


def test_a_search_another_process_audited_is_not_audited_again(client, jane, janes_ct):
    client.force_login(jane)
    client.get(reverse("stow"))
    viewer_audit._known.clear()  # as if the next request went to another process

    client.get(reverse("stow"))

    assert AuditEvent.objects.filter(action=AuditEvent.Action.QUERY, actor_user=jane).count() == 1


def test_metadata_holds_the_headers_and_points_at_the_frames(client, jane, janes_ct, ct, object_store):
    client.force_login(jane)
    url = reverse(
        "dicomweb-series-metadata", args=[janes_ct.study_instance_uid, str(ct[0].SeriesInstanceUID)]
    )

    response = client.get(url)
    again = client.get(reverse("dicomweb-study-metadata", args=[janes_ct.study_instance_uid]))

    assert response.status_code == HTTPStatus.OK
    assert response["Content-Type"] == "application/dicom+json"
    assert response["ETag"]
    metadata = response.json()
    assert [values(m, "00080018")[0] for m in metadata] == [str(ds.SOPInstanceUID) for ds in ct]
    first = metadata[0]
    assert values(first, "00100010") == [{"Alphabetic": "DOE^JANE"}]
    assert values(first, "00281050") == [40]
    assert first["7FE00010"]["BulkDataURI"] == "http://testserver" + instance_url(
        "dicomweb-frames", janes_ct, ct[0], "1"
    )
    assert "InlineBinary" not in json.dumps(first["7FE00010"])
    assert again.json() == metadata
    series = janes_ct.series.get()
    assert (object_store / f"metadata/series/{series.pk}/3.v2.json").exists()
    events = AuditEvent.objects.filter(
        action=AuditEvent.Action.VIEW, study_instance_uid=janes_ct.study_instance_uid
    )
    assert events.count() == 2


def test_metadata_is_read_from_the_cache_once_built(client, jane, janes_ct, ct, monkeypatch):
    client.force_login(jane)
    url = reverse("dicomweb-study-metadata", args=[janes_ct.study_instance_uid])
    first = client.get(url).json()

    def no_reading(*args, **kwargs):
        raise AssertionError("headers read again")

    monkeypatch.setattr("sharing.dicomweb.wado.instance_json", no_reading)
    assert client.get(url).json() == first


def test_an_instance_is_retrieved_as_its_stored_bytes(client, jane, janes_ct, ct):
    client.force_login(jane)
    stored = Instance.objects.get(sop_instance_uid=str(ct[1].SOPInstanceUID))

    response = client.get(instance_url("dicomweb-instance", janes_ct, ct[1]))

    assert response.status_code == HTTPStatus.OK
    assert 'type="application/dicom"' in response["Content-Type"]
    [(content_type, data)] = parts(response)
    assert content_type.startswith("application/dicom")
    with get_store().open(stored.object_key) as handle:
        assert data == handle.read()


def test_retrieving_instances_or_rendered_images_is_audited_once_per_series(
    client, jane, staff, janes_ct, ct
):
    series_url = reverse("dicomweb-series", args=[janes_ct.study_instance_uid, str(ct[0].SeriesInstanceUID)])
    client.force_login(jane)
    b"".join(client.get(series_url).streaming_content)
    b"".join(client.get(instance_url("dicomweb-frames", janes_ct, ct[1], "1")).streaming_content)
    b"".join(client.get(instance_url("dicomweb-instance", janes_ct, ct[2])).streaming_content)
    client.force_login(staff)
    rendered = client.get(
        instance_url("dicomweb-instance-rendered", janes_ct, ct[0]), headers={"Accept": "image/png"}
    )
    assert rendered.status_code == HTTPStatus.OK

    events = AuditEvent.objects.filter(action=AuditEvent.Action.FRAMES).order_by("pk")
    assert [(event.actor_user, event.detail["series_instance_uid"]) for event in events] == [
        (jane, str(ct[0].SeriesInstanceUID)),
        (staff, str(ct[0].SeriesInstanceUID)),
    ]
    assert all(event.study_instance_uid == janes_ct.study_instance_uid for event in events)


def test_a_whole_study_is_retrieved_instance_by_instance(client, jane, janes_ct):
    client.force_login(jane)

    response = client.get(reverse("dicomweb-study", args=[janes_ct.study_instance_uid]))

    assert len(parts(response)) == 3


def test_an_uncompressed_frame_is_the_exact_pixel_bytes(client, jane, janes_ct, ct):
    client.force_login(jane)

    response = client.get(instance_url("dicomweb-frames", janes_ct, ct[0], "1"))

    assert response.status_code == HTTPStatus.OK
    assert 'type="application/octet-stream"' in response["Content-Type"]
    [(content_type, data)] = parts(response)
    assert content_type == f"application/octet-stream; transfer-syntax={EXPLICIT_LE}"
    assert data == ct[0].pixel_array.astype("<u2").tobytes()
    assert response["Cache-Control"].startswith("private")
    assert response["ETag"]


def test_an_rle_frame_is_sent_as_stored_or_decoded_on_request(client, jane, janes_rle, rle):
    client.force_login(jane)
    url = instance_url("dicomweb-frames", janes_rle, rle[1], "1")

    stored = client.get(url)
    decoded = client.get(url, headers={"Accept": RAW_FRAME_ACCEPT})

    [(stored_type, stored_data)] = parts(stored)
    assert stored_type == f"application/octet-stream; transfer-syntax={RLELossless}"
    assert stored_data == next(generate_frames(rle[1].PixelData, number_of_frames=1))
    [(decoded_type, decoded_data)] = parts(decoded)
    assert decoded_type == f"application/octet-stream; transfer-syntax={EXPLICIT_LE}"
    assert decoded_data == rle[1].pixel_array.astype("<u2").tobytes()


def test_a_frame_has_a_length_and_the_same_bytes_on_every_request(client, jane, janes_ct, ct):
    client.force_login(jane)
    url = instance_url("dicomweb-frames", janes_ct, ct[0], "1")

    first, second = client.get(url), client.get(url)

    body = b"".join(first.streaming_content)
    assert int(first["Content-Length"]) == len(body)
    assert first["Accept-Ranges"] == "bytes"
    assert b"".join(second.streaming_content) == body
    assert first["ETag"] == second["ETag"]


def test_a_frame_access_decision_ends_within_a_second(client, jane, janes_ct, ct, monkeypatch):
    from sharing.dicomweb import wado
    from sharing.models import Patient

    client.force_login(jane)
    url = instance_url("dicomweb-frames", janes_ct, ct[0], "1")
    assert client.get(url).status_code == HTTPStatus.OK
    Patient.objects.filter(user=jane).update(user=None)  # staff unlink the record

    later = time.time() + wado.FRAME_ACCESS_SECONDS + 1
    monkeypatch.setattr(wado, "_clock", lambda: later)

    assert client.get(url).status_code == HTTPStatus.NOT_FOUND


def test_a_viewer_s_later_frames_of_a_series_ask_the_database_nothing(
    client, jane, janes_ct, ct, monkeypatch
):
    from sharing.dicomweb import wado

    now = time.time()
    monkeypatch.setattr(wado, "_clock", lambda: now)  # all within the decision's second
    client.force_login(jane)
    first, *rest = (instance_url("dicomweb-frames", janes_ct, ds, "1") for ds in ct)
    assert client.get(first).status_code == HTTPStatus.OK

    with CaptureQueriesContext(connection) as queries:
        frames = [parts(client.get(url))[0][1] for url in rest]

    assert frames == [ds.PixelData for ds in ct[1:]]
    assert [q["sql"] for q in queries if "sharing_instance" in q["sql"]] == []


def test_a_slice_that_arrives_after_the_series_was_decided_is_served(client, jane, ct, tmp_path):
    study = receive(tmp_path, ct[:2], "early")
    client.force_login(jane)
    assert client.get(instance_url("dicomweb-frames", study, ct[0], "1")).status_code == HTTPStatus.OK

    ingest(write_study(ct[2:], tmp_path / "late"))
    response = client.get(instance_url("dicomweb-frames", study, ct[2], "1"))

    assert response.status_code == HTTPStatus.OK
    assert parts(response)[0][1] == ct[2].PixelData


def test_a_frame_asked_for_under_another_series_is_not_found(client, jane, janes_ct, ct, janes_rle, rle):
    client.force_login(jane)
    ct_frame = instance_url("dicomweb-frames", janes_ct, ct[0], "1")
    assert client.get(ct_frame).status_code == HTTPStatus.OK  # the CT series is decided

    # The RLE slice's UID under the CT's study and series, and the CT slice under the RLE's.
    crossed = [
        reverse(
            "dicomweb-frames",
            args=[janes_ct.study_instance_uid, str(ct[0].SeriesInstanceUID), str(rle[0].SOPInstanceUID), "1"],
        ),
        reverse(
            "dicomweb-frames",
            args=[
                janes_rle.study_instance_uid,
                str(rle[0].SeriesInstanceUID),
                str(ct[0].SOPInstanceUID),
                "1",
            ],
        ),
        reverse(
            "dicomweb-frames",
            args=[janes_rle.study_instance_uid, str(ct[0].SeriesInstanceUID), str(ct[0].SOPInstanceUID), "1"],
        ),
    ]

    assert [client.get(url).status_code for url in crossed] == [HTTPStatus.NOT_FOUND] * 3


@pytest.mark.parametrize(
    ("range_header", "expected"),
    [
        ("bytes=0-99", slice(0, 100)),
        ("bytes=100-", slice(100, None)),
        ("bytes=-50", slice(-50, None)),
        ("bytes=10-10", slice(10, 11)),
        ("bytes=200-999999", slice(200, None)),
    ],
)
def test_a_frame_is_sent_in_part_when_asked_for_a_range(client, jane, janes_ct, ct, range_header, expected):
    client.force_login(jane)
    url = instance_url("dicomweb-frames", janes_ct, ct[0], "1")
    whole = b"".join(client.get(url).streaming_content)

    response = client.get(url, headers={"Range": range_header})

    assert response.status_code == HTTPStatus.PARTIAL_CONTENT
    piece = b"".join(response.streaming_content)
    start, stop, _ = expected.indices(len(whole))
    assert piece == whole[start:stop]
    assert response["Content-Range"] == f"bytes {start}-{stop - 1}/{len(whole)}"
    assert int(response["Content-Length"]) == stop - start
    assert response["Cache-Control"].startswith("private")


def test_a_range_of_an_rle_frame_spans_its_fragments_exactly(client, jane, janes_rle, rle):
    client.force_login(jane)
    url = instance_url("dicomweb-frames", janes_rle, rle[1], "1")
    whole = b"".join(client.get(url).streaming_content)

    pieces = [
        b"".join(client.get(url, headers={"Range": f"bytes={start}-{start + 9}"}).streaming_content)
        for start in range(0, len(whole), 10)
    ]

    assert b"".join(pieces) == whole


def test_an_instance_download_resumes_where_it_stopped(client, jane, janes_ct, ct):
    client.force_login(jane)
    url = instance_url("dicomweb-instance", janes_ct, ct[1])
    first = client.get(url)
    whole = b"".join(first.streaming_content)

    rest = client.get(url, headers={"Range": "bytes=1000-", "If-Range": first["ETag"]})

    assert rest.status_code == HTTPStatus.PARTIAL_CONTENT
    assert whole[:1000] + b"".join(rest.streaming_content) == whole


def test_a_range_of_another_version_gets_the_whole_body(client, jane, janes_ct, ct):
    client.force_login(jane)
    url = instance_url("dicomweb-frames", janes_ct, ct[0], "1")

    response = client.get(url, headers={"Range": "bytes=0-9", "If-Range": '"an-older-etag"'})

    assert response.status_code == HTTPStatus.OK
    assert int(response["Content-Length"]) == len(b"".join(response.streaming_content))


@pytest.mark.parametrize("range_header", ["bytes=0-9,20-29", "bytes=9-0", "items=0-9", "bytes=x-"])
def test_ranges_it_does_not_serve_get_the_whole_body(client, jane, janes_ct, ct, range_header):
    client.force_login(jane)
    url = instance_url("dicomweb-frames", janes_ct, ct[0], "1")

    response = client.get(url, headers={"Range": range_header})

    assert response.status_code == HTTPStatus.OK
    assert len(parts(response)) == 1


@pytest.mark.parametrize("range_header", ["bytes=99999999-", "bytes=-0"])
def test_a_range_past_the_end_is_not_satisfiable(client, jane, janes_ct, ct, range_header):
    client.force_login(jane)
    url = instance_url("dicomweb-frames", janes_ct, ct[0], "1")
    total = int(client.get(url)["Content-Length"])

    response = client.get(url, headers={"Range": range_header})

    assert response.status_code == HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE
    assert response["Content-Range"] == f"bytes */{total}"


def test_a_current_copy_wins_over_a_range(client, jane, janes_ct, ct):
    client.force_login(jane)
    url = instance_url("dicomweb-frames", janes_ct, ct[0], "1")
    etag = client.get(url)["ETag"]

    response = client.get(url, headers={"Range": "bytes=0-9", "If-None-Match": etag})

    assert response.status_code == HTTPStatus.NOT_MODIFIED


@pytest.mark.parametrize("frame", ["0", "x", "1,0"])
def test_a_bad_frame_number_is_refused(client, jane, janes_ct, ct, frame):
    client.force_login(jane)

    assert client.get(instance_url("dicomweb-frames", janes_ct, ct[0], frame)).status_code == 400


def test_a_frame_past_the_last_is_not_found(client, jane, janes_ct, ct):
    client.force_login(jane)

    assert client.get(instance_url("dicomweb-frames", janes_ct, ct[0], "2")).status_code == 404


def test_unsupported_media_types_are_not_acceptable(client, jane, janes_ct, ct):
    client.force_login(jane)

    search = client.get(reverse("stow"), headers={"Accept": "application/dicom+xml"})
    frame = client.get(
        instance_url("dicomweb-frames", janes_ct, ct[0], "1"),
        headers={"Accept": 'multipart/related; type="image/jpeg"'},
    )
    rendered = client.get(
        instance_url("dicomweb-instance-rendered", janes_ct, ct[0]), headers={"Accept": "image/gif"}
    )

    for response in (search, frame, rendered):
        assert response.status_code == HTTPStatus.NOT_ACCEPTABLE
        assert response.json()["error"] == "not acceptable"


def test_rendered_images_are_jpeg_or_png_with_an_optional_window(client, jane, janes_ct, ct):
    client.force_login(jane)

    jpeg = client.get(instance_url("dicomweb-instance-rendered", janes_ct, ct[0]))
    png = client.get(
        instance_url("dicomweb-frame-rendered", janes_ct, ct[0], "1") + "?window=40,400,linear",
        headers={"Accept": "image/png"},
    )
    bad = client.get(instance_url("dicomweb-instance-rendered", janes_ct, ct[0]) + "?window=40")

    assert jpeg["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(jpeg.content)).size == (32, 32)
    assert png["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(png.content)).format == "PNG"
    assert bad.status_code == HTTPStatus.BAD_REQUEST


def _every_url(study: Study) -> list[str]:
    series = study.series.get(modality="CT")
    instance = series.instances.first()
    assert instance is not None
    args = [study.study_instance_uid, series.series_instance_uid, instance.sop_instance_uid]
    return [
        reverse("dicomweb-study", args=args[:1]),
        reverse("dicomweb-study-metadata", args=args[:1]),
        reverse("dicomweb-series-search", args=args[:1]),
        reverse("dicomweb-series", args=args[:2]),
        reverse("dicomweb-series-metadata", args=args[:2]),
        reverse("dicomweb-instance-search", args=args[:2]),
        reverse("dicomweb-instance", args=args),
        reverse("dicomweb-instance-rendered", args=args),
        reverse("dicomweb-frames", args=[*args, "1"]),
        reverse("dicomweb-frame-rendered", args=[*args, "1"]),
    ]


def test_another_patients_study_is_not_found_anywhere(client, jane, johns_study):
    client.force_login(jane)

    for url in _every_url(johns_study):
        response = client.get(url)
        assert response.status_code == HTTPStatus.NOT_FOUND, url
        assert b"ROE" not in response.content
        assert b"MRN-2002" not in response.content
    assert client.get(reverse("stow"), {"PatientID": "MRN-2002"}).json() == []
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.VIEW).exists()


def test_anonymous_visitors_are_unauthorized(client, johns_study):
    for url in [reverse("stow"), *_every_url(johns_study)]:
        response = client.get(url)
        assert response.status_code == HTTPStatus.UNAUTHORIZED, url
        assert b"ROE" not in response.content


def test_records_staff_see_every_study(client, staff, johns_study, janes_ct):
    client.force_login(staff)

    found = client.get(reverse("stow")).json()

    assert len(found) == 2
    for url in _every_url(johns_study):
        assert client.get(url).status_code == HTTPStatus.OK, url


def test_stow_still_answers_post_on_the_shared_url(client, staff):
    client.force_login(staff)

    response = client.post(reverse("stow"), data=b"", content_type="application/dicom")

    assert response.status_code not in (HTTPStatus.METHOD_NOT_ALLOWED, HTTPStatus.NOT_FOUND)


def test_other_methods_are_not_allowed_on_the_shared_urls(client, jane, janes_ct):
    client.force_login(jane)

    for url in (reverse("stow"), reverse("dicomweb-study", args=[janes_ct.study_instance_uid])):
        response = client.put(url)
        assert response.status_code == HTTPStatus.METHOD_NOT_ALLOWED
        assert "POST" in response["Allow"]


def test_staff_without_two_factor_authentication_reach_nothing(client, johns_study):
    unprotected = User.objects.create_user("new@example.com", "pw-123456789", role=User.Role.RECORDS)
    client.force_login(unprotected)

    for url in [reverse("stow"), *_every_url(johns_study)]:
        response = client.get(url)
        assert response.status_code == HTTPStatus.FORBIDDEN, url
        assert b"ROE" not in response.content


def test_a_dicomweb_client_searches_and_retrieves_over_http(
    live_server, client, jane, janes_ct, ct, settings
):
    client.force_login(jane)
    session = Session()
    session.headers["Connection"] = "close"  # no idle keep-alive thread left when the server stops
    session.headers["Cookie"] = (
        f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    )
    dicomweb = DICOMwebClient(url=f"{live_server.url}/dicomweb", session=session)
    study_uid, series_uid, sop_uid = (
        janes_ct.study_instance_uid,
        str(ct[0].SeriesInstanceUID),
        str(ct[0].SOPInstanceUID),
    )

    studies = dicomweb.search_for_studies(search_filters={"PatientID": "MRN-1001"})
    series = dicomweb.search_for_series(study_uid)
    instances = dicomweb.search_for_instances(study_uid, series_uid)
    metadata = dicomweb.retrieve_series_metadata(study_uid, series_uid)
    instance = dicomweb.retrieve_instance(study_uid, series_uid, sop_uid)
    [frame] = dicomweb.retrieve_instance_frames(study_uid, series_uid, sop_uid, frame_numbers=[1])
    rendered = dicomweb.retrieve_instance_rendered(study_uid, series_uid, sop_uid)

    assert [s["0020000D"]["Value"][0] for s in studies] == [study_uid]
    assert len(series) == 1
    assert len(instances) == 3
    assert len(metadata) == 3
    assert instance.SOPInstanceUID == sop_uid
    assert (instance.pixel_array == ct[0].pixel_array).all()
    assert frame == ct[0].pixel_array.astype("<u2").tobytes()
    assert rendered[:2] == b"\xff\xd8"


def test_a_client_holding_the_current_etag_gets_304_without_the_body(client, jane, janes_ct, ct):
    client.force_login(jane)
    url = reverse(
        "dicomweb-series-metadata", args=[janes_ct.study_instance_uid, str(ct[0].SeriesInstanceUID)]
    )
    first = client.get(url)

    again = client.get(url, HTTP_IF_NONE_MATCH=first["ETag"])
    stale = client.get(url, HTTP_IF_NONE_MATCH='"something-else"')

    assert again.status_code == HTTPStatus.NOT_MODIFIED
    assert again.content == b""
    assert again["ETag"] == first["ETag"]
    assert again["Cache-Control"].startswith("private")
    assert stale.status_code == HTTPStatus.OK
