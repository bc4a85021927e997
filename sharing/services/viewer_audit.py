"""What a viewer saw, in the audit trail: ``viewer_access_record`` for a page, a report or a
download, and the summarised records for what a viewer's software repeats (frames of a series, the
same search), written once per viewer and half hour rather than once per request."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from django.core.cache import cache

from sharing.access.scope import ViewerScope
from sharing.models import AuditEvent, Patient
from sharing.recall import Recall
from sharing.services.audit import Client, audit_event_record

SUMMARY_SECONDS = 30 * 60


def viewer_access_record(
    scope: ViewerScope,
    *,
    action: AuditEvent.Action,
    client: Client,
    study_instance_uid: str = "",
    patient: Patient | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Record that ``scope``'s viewer reached patient data. A share holder's event names the
    patient of the study (found within the share), so the patient sees it in their history."""
    actor = scope.actor
    if patient is None and study_instance_uid and actor.share is not None:
        study = (
            scope.studies().filter(study_instance_uid=study_instance_uid).select_related("patient").first()
        )
        patient = study.patient if study else None
    return audit_event_record(
        action=action,
        client=client,
        actor_user=actor.user,
        actor_kind=actor.kind,
        actor_label=actor.label,
        share=actor.share,
        patient=patient,
        study_instance_uid=study_instance_uid,
        detail={**actor.detail, **(detail or {})},
    )


def _record_once(
    scope: ViewerScope,
    what: str,
    *,
    action: AuditEvent.Action,
    study_instance_uid: str,
    client: Client,
    detail: dict[str, Any],
) -> None:
    """Audit ``what`` for this viewer unless it was audited within the summary window.

    The window's end is the cache entry's value. A process that has seen it keeps it (``_known``)
    and asks the cache nothing more until then: a viewer's next frame costs no round trip.
    """
    key = f"lightbox:audited:{scope.summary_key()}:{what}"
    now = _clock()
    if _known.get(key, now):
        return
    until = now + SUMMARY_SECONDS
    if cache.add(key, until, timeout=SUMMARY_SECONDS):
        viewer_access_record(
            scope, action=action, client=client, study_instance_uid=study_instance_uid, detail=detail
        )
    else:
        until = cache.get(key)
    if isinstance(until, float):
        _known.keep(key, True, until)


# Summary windows this process knows to be open.
_known: Recall[bool] = Recall(20_000)
_clock = time.time


def frames_record(
    scope: ViewerScope, *, series_instance_uid: str, study_instance_uid: str, client: Client
) -> None:
    """Audit a viewer's frames once per series and half hour, not once per frame."""
    _record_once(
        scope,
        f"frames:{series_instance_uid}",
        action=AuditEvent.Action.FRAMES,
        study_instance_uid=study_instance_uid,
        client=client,
        detail={"series_instance_uid": series_instance_uid},
    )


def search_record(
    scope: ViewerScope,
    *,
    path: str,
    query: Mapping[str, Sequence[str]],
    detail: dict[str, Any],
    study_instance_uid: str,
    client: Client,
) -> None:
    """Audit a QIDO search once per viewer, search and half hour.

    A viewer repeats its searches (every page load asks for the study's series again); the first
    of a run of identical searches is recorded, with its criteria. A different search, or the same
    one from another viewer, is recorded as it comes.
    """
    criteria = json.dumps([path, sorted((k, list(v)) for k, v in query.items())])
    _record_once(
        scope,
        "search:" + hashlib.sha256(criteria.encode()).hexdigest()[:32],
        action=AuditEvent.Action.QUERY,
        study_instance_uid=study_instance_uid,
        client=client,
        detail=detail,
    )
