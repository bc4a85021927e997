"""The patient's release requests: list, the signed authorization form, a request's page with its
timeline, replies, identity document, revocation, and the signed PDF."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from sharing.conf import app_settings
from sharing.forms.releases import AuthorizationForm, IdentityDocumentForm, MessageForm, RevokeForm
from sharing.models import AuditEvent, ReleaseAuthorization, User
from sharing.selectors.releases import (
    authorization_get_for_patient,
    authorization_timeline,
    authorizations_for_patient,
    facilities_active,
)
from sharing.services.audit import Client
from sharing.services.authorization_pdf import statements
from sharing.services.releases import (
    authorization_id_document_attach,
    authorization_reply,
    authorization_revoke,
    authorization_sign,
    record_access,
)
from sharing.storage import ObjectNotFound, get_store


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def private_file_response(data: bytes, *, content_type: str, filename: str, inline: bool) -> HttpResponse:
    response = HttpResponse(data, content_type=content_type)
    disposition = "inline" if inline else "attachment"
    response["Content-Disposition"] = f'{disposition}; filename="{filename}"'
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def read_object(key: str) -> bytes:
    if not key:
        raise Http404("no document")
    try:
        with get_store().open(key) as handle:
            return handle.read()
    except ObjectNotFound as exc:
        raise Http404("document missing") from exc


@login_required
def request_list(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    return render(
        request, "sharing/requests/list.html", {"authorizations": authorizations_for_patient(user=user)}
    )


def _facility_statements() -> list[tuple[object, list[tuple[str, str]]]]:
    """The statements as they read for each facility, so the form shows the right revocation address."""
    return [(f, statements(ReleaseAuthorization(facility=f))) for f in facilities_active()]


@login_required
@require_http_methods(["GET", "POST"])
def request_new(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    if request.method == "POST":
        form = AuthorizationForm(request.POST, request.FILES)
        if form.is_valid():
            auth = authorization_sign(
                requester=user,
                details=form.details(),
                signature_png=form.cleaned_data["signature"],
                id_document=form.cleaned_data.get("id_document"),
                client=Client.of(request),
            )
            messages.success(request, f"Your request #{auth.pk} was signed and sent to the records office.")
            return HttpResponseRedirect(reverse("request-detail", args=[auth.pk]))
    else:
        form = AuthorizationForm(initial={"contact_email": user.email})
    return render(
        request,
        "sharing/requests/form.html",
        {
            "form": form,
            "facility_statements": _facility_statements(),
            "due_days": app_settings.RELEASE_DUE_DAYS,
        },
    )


def _detail_context(request: HttpRequest, auth: ReleaseAuthorization, **extra: object) -> dict[str, object]:
    return {
        "auth": auth,
        "timeline": authorization_timeline(authorization=auth, staff=False),
        "reply_form": MessageForm(),
        "document_form": IdentityDocumentForm(),
        **extra,
    }


@login_required
def request_detail(request: HttpRequest, pk: int) -> HttpResponse:
    auth = authorization_get_for_patient(user=_user(request), pk=pk)
    return render(request, "sharing/requests/detail.html", _detail_context(request, auth))


@login_required
@require_POST
def request_reply(request: HttpRequest, pk: int) -> HttpResponse:
    user = _user(request)
    auth = authorization_get_for_patient(user=user, pk=pk)
    form = MessageForm(request.POST)
    if form.is_valid():
        try:
            authorization_reply(
                authorization=auth, actor=user, text=form.cleaned_data["text"], client=Client.of(request)
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, "Your message was sent to the records office.")
            return HttpResponseRedirect(reverse("request-detail", args=[auth.pk]))
    return render(
        request, "sharing/requests/detail.html", _detail_context(request, auth, reply_form=form), status=400
    )


@login_required
@require_POST
def request_id_document(request: HttpRequest, pk: int) -> HttpResponse:
    user = _user(request)
    auth = authorization_get_for_patient(user=user, pk=pk)
    form = IdentityDocumentForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            authorization_id_document_attach(
                authorization=auth,
                actor=user,
                document=form.cleaned_data["id_document"],
                client=Client.of(request),
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, "Your identity document was added to the request.")
            return HttpResponseRedirect(reverse("request-detail", args=[auth.pk]))
    return render(
        request,
        "sharing/requests/detail.html",
        _detail_context(request, auth, document_form=form),
        status=400,
    )


@login_required
@require_http_methods(["GET", "POST"])
def request_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    user = _user(request)
    auth = authorization_get_for_patient(user=user, pk=pk)
    form = RevokeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            authorization_revoke(authorization=auth, actor=user, client=Client.of(request))
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(
                request, f"Authorization #{auth.pk} is revoked: nothing more will be released under it."
            )
            return HttpResponseRedirect(reverse("request-detail", args=[auth.pk]))
    return render(request, "sharing/requests/revoke.html", {"auth": auth, "form": form})


@login_required
def request_pdf(request: HttpRequest, pk: int) -> HttpResponse:
    user = _user(request)
    auth = authorization_get_for_patient(user=user, pk=pk)
    data = read_object(auth.pdf_key)
    record_access(
        authorization=auth,
        actor=user,
        action=AuditEvent.Action.DOWNLOAD,
        what="authorization pdf",
        client=Client.of(request),
    )
    return private_file_response(
        data, content_type="application/pdf", filename=f"authorization-{auth.pk}.pdf", inline=True
    )
