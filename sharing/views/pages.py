from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from sharing.models import AuditEvent, User
from sharing.selectors.releases import studies_unreconciled
from sharing.services.audit import Client, audit_event_record

PAGE_SIZE = 50


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


@login_required
def unmatched_studies(request: HttpRequest) -> HttpResponse:
    """Studies waiting for records staff: no linked account yet, or a patient's own upload, that no
    one has assigned or rejected since their last images arrived."""
    user = _user(request)
    page = Paginator(studies_unreconciled(user=user), PAGE_SIZE).get_page(request.GET.get("page"))
    audit_event_record(
        actor_user=user,
        action=AuditEvent.Action.QUERY,
        client=Client.of(request),
        detail={"list": "unmatched studies", "page": page.number, "shown": len(page.object_list)},
    )
    return render(request, "sharing/unmatched.html", {"page": page})
