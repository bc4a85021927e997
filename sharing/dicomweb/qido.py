"""QIDO-RS (PS3.18 §10.6): searching studies, series and instances, answered from the database.

Each level takes the query parameters as given, narrows a queryset the viewer scope produced, and
returns DICOM JSON with the attributes of PS3.18 Table 10.6.3-3.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Mapping
from typing import Any

from django.db.models import F, Q, QuerySet, Value
from django.db.models.functions import Coalesce

from sharing.models import Instance, Series, Study

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
# Query keys may be keywords or tags (PS3.18 §8.3.4.1).
_TAGS = {
    "00100020": "PatientID",
    "00100010": "PatientName",
    "00080020": "StudyDate",
    "00080061": "ModalitiesInStudy",
    "0020000D": "StudyInstanceUID",
    "00080050": "AccessionNumber",
    "00080060": "Modality",
    "0020000E": "SeriesInstanceUID",
    "00200011": "SeriesNumber",
    "00080018": "SOPInstanceUID",
    "00200013": "InstanceNumber",
}
UrlFor = Callable[..., str]


class QueryError(ValueError):
    """A query parameter we cannot understand: answered with 400."""


def _params(query: Mapping[str, list[str]]) -> dict[str, str]:
    params: dict[str, str] = {}
    for key, values in query.items():
        name = _TAGS.get(key.upper(), key)
        if values and values[-1] != "":
            params[name] = values[-1]
    return params


def _page(params: dict[str, str]) -> slice:
    try:
        limit = int(params.get("limit", DEFAULT_LIMIT))
        offset = int(params.get("offset", 0))
    except ValueError:
        raise QueryError("limit and offset are whole numbers") from None
    if limit < 1 or offset < 0:
        raise QueryError("limit must be positive and offset not negative")
    limit = min(limit, MAX_LIMIT)
    return slice(offset, offset + limit)


def _wildcard(value: str) -> Q | str:
    """A DICOM wildcard pattern (* and ?) as a regex, or the plain value if it has none."""
    if "*" not in value and "?" not in value:
        return value
    return "^" + "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in value) + "$"


def _prefix(value: str) -> str | None:
    """``ABC*`` → ``ABC``: a pattern that only fixes the start, which an index can answer."""
    head = value[:-1]
    if value.endswith("*") and head and "*" not in head and "?" not in head:
        return head
    return None


def _text_filter(field: str, value: str) -> Q:
    pattern = _wildcard(value)
    if pattern == value:
        return Q(**{field: value})
    if (prefix := _prefix(value)) is not None:
        return Q(**{f"{field}__startswith": prefix})
    return Q(**{f"{field}__regex": pattern})


def _name_filter(field: str, value: str) -> Q:
    pattern = _wildcard(value)
    if pattern == value:
        return Q(**{f"{field}__iexact": value})
    if (prefix := _prefix(value)) is not None:
        # On PostgreSQL, UPPER(name) LIKE 'PREFIX%' uses the index of migration 0005.
        return Q(**{f"{field}__istartswith": prefix})
    return Q(**{f"{field}__iregex": pattern})


def _date(text: str) -> datetime.date:
    try:
        return datetime.datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        raise QueryError(f"{text!r} is not a date (YYYYMMDD)") from None


def _date_filter(field: str, value: str) -> Q:
    if "-" not in value:
        return Q(**{field: _date(value)})
    low, _, high = value.partition("-")
    if not low and not high:
        raise QueryError("a date range needs at least one end")
    q = Q()
    if low:
        q &= Q(**{f"{field}__gte": _date(low)})
    if high:
        q &= Q(**{f"{field}__lte": _date(high)})
    return q


def _uid_list_filter(field: str, value: str) -> Q:
    uids = [uid.strip() for uid in re.split(r"[,\\]", value) if uid.strip()]
    return Q(**{f"{field}__in": uids})


def _modalities_filter(value: str) -> Q:
    q = Q()
    for modality in (m.strip() for m in re.split(r"[,\\]", value)):
        if modality:
            q |= (
                Q(modalities=modality)
                | Q(modalities__startswith=modality + "\\")
                | Q(modalities__endswith="\\" + modality)
                | Q(modalities__contains="\\" + modality + "\\")
            )
    return q


def _int_filter(field: str, value: str) -> Q:
    try:
        return Q(**{f"{field}__in": [int(v) for v in value.split(",")]})
    except ValueError:
        raise QueryError(f"{value!r} is not a number") from None


def _one(vr: str, value: Any) -> dict[str, Any]:
    """``_element`` with one value or none: most attributes, and the quicker for it."""
    if value is None or value == "":
        return {"vr": vr}
    return {"vr": vr, "Value": [{"Alphabetic": value} if vr == "PN" else value]}


def _element(vr: str, *values: Any) -> dict[str, Any]:
    present = [v for v in values if v not in ("", None)]
    if not present:
        return {"vr": vr}
    if vr == "PN":
        return {"vr": vr, "Value": [{"Alphabetic": v} for v in present]}
    return {"vr": vr, "Value": present}


def _da(value: datetime.date | None) -> str:
    return value.isoformat().replace("-", "") if value else ""


def search_studies(
    *, studies: QuerySet[Study], query: Mapping[str, list[str]], url_for: UrlFor
) -> list[dict[str, Any]]:
    params = _params(query)
    q = Q()
    if "PatientID" in params:
        q &= _text_filter("patient__patient_id", params["PatientID"])
    if "PatientName" in params:
        q &= _name_filter("patient__name", params["PatientName"])
    if "StudyDate" in params:
        q &= _date_filter("study_date", params["StudyDate"])
    if "ModalitiesInStudy" in params:
        q &= _modalities_filter(params["ModalitiesInStudy"])
    if "StudyInstanceUID" in params:
        q &= _uid_list_filter("study_instance_uid", params["StudyInstanceUID"])
    if "AccessionNumber" in params:
        q &= _text_filter("accession_number", params["AccessionNumber"])
    page = _page(params)
    found = studies.filter(q).order_by(
        *_study_order(by_patient="PatientID" in params or "PatientName" in params)
    )
    return [_study_json(study, url_for) for study in found.values(*_STUDY_FIELDS)[page]]


# Undated studies first, as PostgreSQL's index on study_date gives them (on SQLite too).
_UNDATED = Value(datetime.date.max)


def _study_order(*, by_patient: bool) -> tuple[Any, ...]:
    """Newest first. A search by patient sorts an expression that no index can answer, so that
    PostgreSQL finds the patients first (few, by their indexes) and then sorts their studies.
    Otherwise it walks the study-date index and checks each study's patient, hoping for an early
    match: 13 ms for a name prefix whose patients' studies were all a few years old, 1.5 ms now.
    """
    if by_patient:
        return (Coalesce("study_date", _UNDATED).desc(), F("pk").desc())
    return (F("study_date").desc(nulls_first=True), F("pk").desc())


# What a study's search result shows: read as plain values, with none of the model's other columns.
_STUDY_FIELDS = (
    "study_instance_uid",
    "study_date",
    "study_time",
    "accession_number",
    "modalities",
    "referring_physician",
    "description",
    "study_id",
    "number_of_series",
    "number_of_instances",
    "patient__name",
    "patient__patient_id",
    "patient__issuer",
    "patient__birth_date",
    "patient__sex",
)


def _study_json(study: dict[str, Any], url_for: UrlFor) -> dict[str, Any]:
    return {
        "00080020": _one("DA", _da(study["study_date"])),
        "00080030": _one("TM", study["study_time"]),
        "00080050": _one("SH", study["accession_number"]),
        "00080061": _element("CS", *(m for m in study["modalities"].split("\\") if m)),
        "00080090": _one("PN", study["referring_physician"]),
        "00081030": _one("LO", study["description"]),
        "00081190": _one("UR", url_for("dicomweb-study", study["study_instance_uid"])),
        "00100010": _one("PN", study["patient__name"]),
        "00100020": _one("LO", study["patient__patient_id"]),
        "00100021": _one("LO", study["patient__issuer"]),
        "00100030": _one("DA", _da(study["patient__birth_date"])),
        "00100040": _one("CS", study["patient__sex"]),
        "0020000D": _one("UI", study["study_instance_uid"]),
        "00200010": _one("SH", study["study_id"]),
        "00201206": _one("IS", study["number_of_series"]),
        "00201208": _one("IS", study["number_of_instances"]),
    }


def search_series(*, study: Study, query: Mapping[str, list[str]], url_for: UrlFor) -> list[dict[str, Any]]:
    params = _params(query)
    q = Q(number_of_instances__gt=0)
    if "Modality" in params:
        q &= _uid_list_filter("modality", params["Modality"])
    if "SeriesInstanceUID" in params:
        q &= _uid_list_filter("series_instance_uid", params["SeriesInstanceUID"])
    if "SeriesNumber" in params:
        q &= _int_filter("series_number", params["SeriesNumber"])
    page = _page(params)
    found = Series.objects.filter(study=study).filter(q).order_by("series_number", "pk")[page]
    uid = study.study_instance_uid
    return [
        {
            "00080060": _element("CS", series.modality),
            "0008103E": _element("LO", series.description),
            "00081190": _element("UR", url_for("dicomweb-series", uid, series.series_instance_uid)),
            "0020000D": _element("UI", uid),
            "0020000E": _element("UI", series.series_instance_uid),
            "00200011": _element("IS", series.series_number),
            "00201209": _element("IS", series.number_of_instances),
        }
        for series in found
    ]


def search_instances(
    *, series: Series, query: Mapping[str, list[str]], url_for: UrlFor
) -> list[dict[str, Any]]:
    params = _params(query)
    q = Q()
    if "SOPInstanceUID" in params:
        q &= _uid_list_filter("sop_instance_uid", params["SOPInstanceUID"])
    if "InstanceNumber" in params:
        q &= _int_filter("instance_number", params["InstanceNumber"])
    page = _page(params)
    found = series_instances(series=series).filter(q)[page]
    study_uid, series_uid = series.study.study_instance_uid, series.series_instance_uid
    return [
        {
            "00080016": _element("UI", instance.sop_class_uid),
            "00080018": _element("UI", instance.sop_instance_uid),
            "00081190": _element(
                "UR", url_for("dicomweb-instance", study_uid, series_uid, instance.sop_instance_uid)
            ),
            "0020000D": _element("UI", study_uid),
            "0020000E": _element("UI", series_uid),
            "00200013": _element("IS", instance.instance_number),
            "00280008": _element("IS", instance.number_of_frames),
            "00280010": _element("US", instance.rows),
            "00280011": _element("US", instance.columns),
        }
        for instance in found
    ]


def series_instances(*, series: Series) -> QuerySet[Instance]:
    return Instance.objects.filter(series=series, state=Instance.State.INDEXED).order_by(
        "instance_number", "pk"
    )
