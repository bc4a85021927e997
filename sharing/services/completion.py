"""Deciding that a study is complete: a quiet period with nothing new and nothing pending."""

from __future__ import annotations

import datetime

from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from sharing.conf import app_settings
from sharing.models import AuditEvent, Instance, Study, User
from sharing.services.audit import NO_CLIENT, audit_event_record


def studies_mark_complete(*, now: datetime.datetime | None = None) -> list[int]:
    """Mark quiet studies complete and tell their patients. Returns the ids marked."""
    now = now or timezone.now()
    quiet_since = now - datetime.timedelta(seconds=app_settings.STUDY_QUIET_SECONDS)
    candidates = Study.objects.filter(
        completed_at__isnull=True, last_received_at__lte=quiet_since
    ).values_list("pk", "study_instance_uid")
    marked = []
    for study_id, study_uid in candidates:
        busy = (
            Instance.objects.filter(study_instance_uid=study_uid)
            .filter(state=Instance.State.RECEIVED)
            .exists()
            or Instance.objects.filter(study_instance_uid=study_uid, received_at__gt=quiet_since).exists()
        )
        if not busy and _study_mark_complete(study_id=study_id, now=now):
            marked.append(study_id)
    return marked


@transaction.atomic
def _study_mark_complete(*, study_id: int, now: datetime.datetime) -> bool:
    claimed = Study.objects.filter(pk=study_id, completed_at__isnull=True).update(completed_at=now)
    if not claimed:
        return False
    study = Study.objects.select_related("patient__user").get(pk=study_id)
    audit_event_record(
        action=AuditEvent.Action.STUDY_COMPLETE,
        client=NO_CLIENT,
        actor_label="Lightbox",
        patient=study.patient,
        study_instance_uid=study.study_instance_uid,
        detail={"instances": study.number_of_instances, "series": study.number_of_series},
    )
    user = study.patient.user
    if user is not None and user.is_active and not study.held_reason:
        transaction.on_commit(lambda: _notify_new_images(user))
    return True


def _notify_new_images(user: User) -> None:
    # No patient data in the message: email is not a safe channel for it.
    send_mail(
        subject="New images in your Lightbox library",
        message=(
            "Hello,\n\nNew medical images have arrived in your Lightbox library.\n"
            f"Sign in to see them: {app_settings.SITE_URL}{reverse('account_login')}\n\n"
            "— Lightbox\n"
        ),
        from_email=None,
        recipient_list=[user.email],
        fail_silently=True,
    )
