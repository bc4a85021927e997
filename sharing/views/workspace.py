"""The records staff workspace: the queue of release requests, a request's page and the actions on
it, and the reconciliation of studies that match no patient. Staff only (and, by
sharing.middleware, only with two-factor authentication)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from sharing.conf import app_settings
from sharing.forms.releases import (
    AssignForm,
    ConfirmForm,
    DenyForm,
    ExtendForm,
    HoldForm,
    IdentityVerifyForm,
    NoteForm,
    PatientLinkForm,
    PatientSearchForm,
    QueueFilterForm,
    ReconcileAssignForm,
    ReconcileRejectForm,
    StudyPickForm,
    StudySearchForm,
)
from sharing.models import AuditEvent, ReleaseAuthorization, User
from sharing.selectors.releases import (
    QueueFilters,
    StudySearch,
    authorization_get_for_staff,
    authorization_queue,
    authorization_retrievals,
    authorization_studies,
    authorization_timeline,
    denial_reasons,
    patient_get_for_staff,
    patients_search_for_staff,
    reconciliation_history,
    records_staff,
    studies_by_pk_for_staff,
    studies_search_for_staff,
    study_get_for_reconciliation,
)
from sharing.services.audit import Client, audit_event_record
from sharing.services.releases import (
    authorization_assign,
    authorization_deny,
    authorization_extend,
    authorization_hold,
    authorization_note,
    authorization_patient_link,
    authorization_release,
    authorization_studies_attach,
    authorization_studies_detach,
    identity_verify,
    record_access,
    studies_count,
    study_reconcile_assign,
    study_reconcile_reject,
)
from sharing.views.authorizations import private_file_response, read_object

QUEUE_PAGE_SIZE = 50
View = Callable[..., HttpResponse]


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def staff_required(view: View) -> View:
    @login_required
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not _user(request).is_records_staff:
            raise PermissionDenied("records staff only")
        return view(request, *args, **kwargs)

    return wrapped


def _no_store(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "private, no-store"
    return response


# --- The queue -----------------------------------------------------------------------------------


@staff_required
def queue(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    staff = list(records_staff(user=user))
    params = request.GET.copy()
    params.setdefault("status", "open")
    form = QueueFilterForm(params, staff=staff)
    filters = QueueFilters(status="open")
    if form.is_valid():
        data = form.cleaned_data
        filters = QueueFilters(
            status=data["status"],
            assignee=data["assignee"],
            facility=data["facility"].pk if data["facility"] else None,
            overdue=data["overdue"],
            sort=data["sort"] or "due",
        )
    page = Paginator(authorization_queue(user=user, filters=filters), QUEUE_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    audit_event_record(
        actor_user=user,
        action=AuditEvent.Action.QUERY,
        client=Client.of(request),
        detail={"list": "release requests", "page": page.number, "shown": len(page.object_list)},
    )
    query = request.GET.copy()
    query.pop("page", None)
    return _no_store(
        render(
            request,
            "sharing/workspace/queue.html",
            {"form": form, "page": page, "today": timezone.localdate(), "query": query.urlencode()},
        )
    )


# --- A request -----------------------------------------------------------------------------------


def _pacs_url(pk: int) -> str:
    try:
        base = reverse("pacs-search")
    except NoReverseMatch:
        base = "/staff/pacs/"
    return f"{base}?request={pk}"


def _request_context(
    request: HttpRequest, auth: ReleaseAuthorization, **forms_: forms.Form
) -> dict[str, Any]:
    user = _user(request)
    staff = list(records_staff(user=user))
    attached = authorization_studies(authorization=auth)
    search_form = StudySearchForm(request.GET or None)
    results = []
    if search_form.is_bound and search_form.is_valid():
        search = StudySearch(**search_form.cleaned_data)
        results = studies_search_for_staff(user=user, search=search)
        if not search.is_empty:
            audit_event_record(
                actor_user=user,
                action=AuditEvent.Action.QUERY,
                client=Client.of(request),
                detail={"list": "study search for request", "authorization": auth.pk, "shown": len(results)},
            )
    attached_pks = {s.pk for s in attached}
    context: dict[str, Any] = {
        "auth": auth,
        "today": timezone.localdate(),
        "timeline": authorization_timeline(authorization=auth, staff=True),
        "attached": attached,
        "unlinked_attached": [s for s in attached if s.patient.user_id != auth.requester_id],
        "retrievals": authorization_retrievals(authorization=auth),
        "search_form": search_form,
        "results": [(s, s.pk in attached_pks) for s in results],
        "pacs_url": _pacs_url(auth.pk),
        "max_extension": app_settings.RELEASE_EXTENSION_DAYS,
        "assign_form": AssignForm(initial={"assignee": auth.assignee_id or ""}, staff=staff),
        "verify_form": IdentityVerifyForm(),
        "link_form": PatientLinkForm(
            initial={"patient_id": auth.patient.patient_id if auth.patient else auth.mrn}
        ),
        "hold_form": HoldForm(),
        "extend_form": ExtendForm(max_days=app_settings.RELEASE_EXTENSION_DAYS),
        "note_form": NoteForm(),
        "deny_form": DenyForm(reasons=denial_reasons()),
        "release_form": ConfirmForm(),
    }
    context.update(forms_)
    return context


@staff_required
def request_page(request: HttpRequest, pk: int) -> HttpResponse:
    user = _user(request)
    auth = authorization_get_for_staff(user=user, pk=pk)
    context = _request_context(request, auth)
    record_access(
        authorization=auth,
        actor=user,
        action=AuditEvent.Action.VIEW,
        what="request page",
        client=Client.of(request),
    )
    return _no_store(render(request, "sharing/workspace/request.html", context))


def _act(
    request: HttpRequest,
    pk: int,
    *,
    form: forms.Form,
    form_name: str,
    perform: Callable[[ReleaseAuthorization, User, forms.Form], str],
) -> HttpResponse:
    """Validate, run the service, and come back to the request page; errors show on the form."""
    user = _user(request)
    auth = authorization_get_for_staff(user=user, pk=pk)
    if form.is_valid():
        try:
            done = perform(auth, user, form)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, done)
            return HttpResponseRedirect(reverse("workspace-request", args=[auth.pk]))
    auth.refresh_from_db()
    context = _request_context(request, auth, **{form_name: form})
    return _no_store(render(request, "sharing/workspace/request.html", context, status=400))


@staff_required
@require_POST
def request_assign(request: HttpRequest, pk: int) -> HttpResponse:
    user = _user(request)
    post = request.POST.copy()
    if post.get("assignee") == "me":
        post["assignee"] = str(user.pk)
    form = AssignForm(post, staff=list(records_staff(user=user)))

    def perform(auth: ReleaseAuthorization, actor: User, form: forms.Form) -> str:
        assert isinstance(form, AssignForm)
        assignee = form.assignee_user()
        authorization_assign(authorization=auth, actor=actor, assignee=assignee, client=Client.of(request))
        return f"Assigned to {assignee.email}." if assignee else "Unassigned."

    return _act(request, pk, form=form, form_name="assign_form", perform=perform)


@staff_required
@require_POST
def request_verify(request: HttpRequest, pk: int) -> HttpResponse:
    def perform(auth: ReleaseAuthorization, actor: User, form: forms.Form) -> str:
        assert isinstance(form, IdentityVerifyForm)
        identity_verify(authorization=auth, actor=actor, method=form.method_text(), client=Client.of(request))
        return "Identity verified."

    return _act(request, pk, form=IdentityVerifyForm(request.POST), form_name="verify_form", perform=perform)


@staff_required
@require_POST
def request_link(request: HttpRequest, pk: int) -> HttpResponse:
    def perform(auth: ReleaseAuthorization, actor: User, form: forms.Form) -> str:
        patient = authorization_patient_link(
            authorization=auth,
            actor=actor,
            patient_id=form.cleaned_data["patient_id"],
            client=Client.of(request),
        )
        return f"The account is linked to patient ID {patient.patient_id}: their studies now show in their library."

    return _act(request, pk, form=PatientLinkForm(request.POST), form_name="link_form", perform=perform)


@staff_required
@require_POST
def request_attach(request: HttpRequest, pk: int) -> HttpResponse:
    def perform(auth: ReleaseAuthorization, actor: User, form: forms.Form) -> str:
        studies = studies_by_pk_for_staff(user=actor, pks=form.cleaned_data["studies"])
        if request.POST.get("detach"):
            authorization_studies_detach(
                authorization=auth, actor=actor, studies=studies, client=Client.of(request)
            )
            return f"{studies_count(len(studies))} detached."
        added = authorization_studies_attach(
            authorization=auth, actor=actor, studies=studies, client=Client.of(request)
        )
        return f"{studies_count(added)} attached."

    return _act(request, pk, form=StudyPickForm(request.POST), form_name="pick_form", perform=perform)


@staff_required
@require_POST
def request_note(request: HttpRequest, pk: int) -> HttpResponse:
    def perform(auth: ReleaseAuthorization, actor: User, form: forms.Form) -> str:
        authorization_note(
            authorization=auth, actor=actor, text=form.cleaned_data["text"], client=Client.of(request)
        )
        return "Note added."

    return _act(request, pk, form=NoteForm(request.POST), form_name="note_form", perform=perform)


@staff_required
@require_POST
def request_hold(request: HttpRequest, pk: int) -> HttpResponse:
    def perform(auth: ReleaseAuthorization, actor: User, form: forms.Form) -> str:
        authorization_hold(
            authorization=auth, actor=actor, message=form.cleaned_data["message"], client=Client.of(request)
        )
        return "On hold: the patient was asked to reply."

    return _act(request, pk, form=HoldForm(request.POST), form_name="hold_form", perform=perform)


@staff_required
@require_POST
def request_extend(request: HttpRequest, pk: int) -> HttpResponse:
    def perform(auth: ReleaseAuthorization, actor: User, form: forms.Form) -> str:
        authorization_extend(
            authorization=auth,
            actor=actor,
            days=form.cleaned_data["days"],
            reason=form.cleaned_data["reason"],
            client=Client.of(request),
        )
        return "Due date extended."

    form = ExtendForm(request.POST, max_days=app_settings.RELEASE_EXTENSION_DAYS)
    return _act(request, pk, form=form, form_name="extend_form", perform=perform)


@staff_required
@require_POST
def request_deny(request: HttpRequest, pk: int) -> HttpResponse:
    def perform(auth: ReleaseAuthorization, actor: User, form: forms.Form) -> str:
        authorization_deny(
            authorization=auth,
            actor=actor,
            reason=form.cleaned_data["reason_text"],
            client=Client.of(request),
        )
        return "Request denied: the patient was notified."

    form = DenyForm(request.POST, reasons=denial_reasons())
    return _act(request, pk, form=form, form_name="deny_form", perform=perform)


@staff_required
@require_POST
def request_release(request: HttpRequest, pk: int) -> HttpResponse:
    """Release, then show the outcome once: for a provider, the access code the patient also gets."""
    user = _user(request)
    auth = authorization_get_for_staff(user=user, pk=pk)
    form = ConfirmForm(request.POST)
    if form.is_valid():
        try:
            outcome = authorization_release(
                authorization=auth,
                actor=user,
                client=Client.of(request),
                link_for=lambda token: request.build_absolute_uri(reverse("share-open", args=[token])),
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            return _no_store(
                render(request, "sharing/workspace/released.html", {"auth": auth, "outcome": outcome})
            )
    auth.refresh_from_db()
    context = _request_context(request, auth, release_form=form)
    return _no_store(render(request, "sharing/workspace/request.html", context, status=400))


@staff_required
def request_pdf(request: HttpRequest, pk: int) -> HttpResponse:
    user = _user(request)
    auth = authorization_get_for_staff(user=user, pk=pk)
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


@staff_required
def request_id_document(request: HttpRequest, pk: int) -> HttpResponse:
    user = _user(request)
    auth = authorization_get_for_staff(user=user, pk=pk)
    data = read_object(auth.id_document_key)
    record_access(
        authorization=auth,
        actor=user,
        action=AuditEvent.Action.DOWNLOAD,
        what="identity document",
        client=Client.of(request),
    )
    is_pdf = auth.id_document_type == "application/pdf"
    suffix = {"image/jpeg": "jpg", "image/png": "png"}.get(auth.id_document_type, "pdf")
    return private_file_response(
        data, content_type=auth.id_document_type, filename=f"identity-{auth.pk}.{suffix}", inline=is_pdf
    )


# --- Reconciliation ------------------------------------------------------------------------------


def _reconcile_context(request: HttpRequest, pk: int, **extra: Any) -> dict[str, Any]:
    user = _user(request)
    study = study_get_for_reconciliation(user=user, pk=pk)
    search_form = PatientSearchForm(request.GET or None)
    candidates = []
    if search_form.is_bound and search_form.is_valid() and search_form.cleaned_data["q"]:
        candidates = patients_search_for_staff(user=user, query=search_form.cleaned_data["q"])
    chosen = None
    if request.GET.get("patient", "").isdigit():
        chosen = patient_get_for_staff(user=user, pk=int(request.GET["patient"]))
    return {
        "study": study,
        "search_form": search_form,
        "candidates": candidates,
        "chosen": chosen,
        "history": reconciliation_history(user=user, study=study),
        "reject_form": ReconcileRejectForm(),
        **extra,
    }


@staff_required
def reconcile(request: HttpRequest, pk: int) -> HttpResponse:
    context = _reconcile_context(request, pk)
    audit_event_record(
        actor_user=_user(request),
        action=AuditEvent.Action.VIEW,
        client=Client.of(request),
        patient=context["study"].patient,
        study_instance_uid=context["study"].study_instance_uid,
        detail={"page": "reconciliation"},
    )
    return _no_store(render(request, "sharing/workspace/reconcile.html", context))


@staff_required
@require_http_methods(["POST"])
def reconcile_assign(request: HttpRequest, pk: int) -> HttpResponse:
    user = _user(request)
    study = study_get_for_reconciliation(user=user, pk=pk)
    form = ReconcileAssignForm(request.POST)
    if form.is_valid():
        patient = patient_get_for_staff(user=user, pk=form.cleaned_data["patient"])
        try:
            study_reconcile_assign(study=study, patient=patient, actor=user, client=Client.of(request))
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, f"The study now belongs to patient ID {patient.patient_id}.")
            return HttpResponseRedirect(reverse("unmatched-studies"))
    return _no_store(
        render(request, "sharing/workspace/reconcile.html", _reconcile_context(request, pk), status=400)
    )


@staff_required
@require_http_methods(["POST"])
def reconcile_reject(request: HttpRequest, pk: int) -> HttpResponse:
    user = _user(request)
    study = study_get_for_reconciliation(user=user, pk=pk)
    form = ReconcileRejectForm(request.POST)
    if form.is_valid():
        study_reconcile_reject(
            study=study, actor=user, reason=form.cleaned_data["reason"], client=Client.of(request)
        )
        messages.success(request, "The study was rejected and left the queue. Its images are kept unchanged.")
        return HttpResponseRedirect(reverse("unmatched-studies"))
    context = _reconcile_context(request, pk, reject_form=form)
    return _no_store(render(request, "sharing/workspace/reconcile.html", context, status=400))
