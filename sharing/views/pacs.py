"""Records staff pages: search the PACS, retrieve a study into Lightbox, follow the retrieve.

Searches are POSTed, so that names and birth dates stay out of URLs, history and access logs.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from sharing.dicom.qr import CriteriaError, PacsError, StudyMatch, study_query
from sharing.models import PacsNode, ReleaseAuthorization, RetrieveJob, Study, User
from sharing.services.audit import Client
from sharing.services.pacs import (
    authorization_for_staff,
    pacs_nodes_active,
    pacs_search,
    retrieve_audit_viewed,
    retrieve_job_get,
    retrieve_jobs_recent,
    retrieve_start,
    studies_present,
)

FINISHED = {RetrieveJob.Status.DONE, RetrieveJob.Status.PARTIAL, RetrieveJob.Status.FAILED}


def _staff(request: HttpRequest) -> User:
    user = request.user
    if not isinstance(user, User) or not user.is_records_staff:
        raise PermissionDenied("records staff only")
    return user


class DateInput(forms.DateInput):
    input_type = "date"


class PacsSearchForm(forms.Form):
    pacs = forms.ModelChoiceField(queryset=PacsNode.objects.none(), label="PACS", empty_label=None)
    patient_id = forms.CharField(label="Patient ID (MRN)", required=False, max_length=64)
    patient_name = forms.CharField(
        label="Patient name",
        required=False,
        max_length=64,
        help_text="Family name first, e.g. DOE^JANE or Doe. * and ? are wildcards; "
        "a name without one matches names that start with it.",
    )
    birth_date = forms.DateField(label="Born", required=False, widget=DateInput)
    date_from = forms.DateField(label="Study date from", required=False, widget=DateInput)
    date_to = forms.DateField(label="Study date to", required=False, widget=DateInput)
    modality = forms.CharField(
        label="Modality", required=False, max_length=64, help_text="e.g. CT, or several: CT, MR"
    )
    request = forms.IntegerField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["pacs"].queryset = pacs_nodes_active()  # type: ignore[attr-defined]

    def clean_patient_name(self) -> str:
        name = str(self.cleaned_data["patient_name"]).strip()
        if "," in name and "^" not in name:  # "Doe, Jane" → DOE^JANE
            family, _, given = name.partition(",")
            name = f"{family.strip()}^{given.strip()}"
        if name and "*" not in name and "?" not in name:
            name += "*"
        return name

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        criteria = {key: cleaned.get(key) for key in ("patient_id", "birth_date", "date_from", "date_to")}
        if not any(criteria.values()) and not cleaned.get("patient_name") and not cleaned.get("modality"):
            raise ValidationError("Enter at least one of patient ID, name, birth date or study dates.")
        if not any(criteria.values()) and not cleaned.get("patient_name"):
            raise ValidationError("A modality alone matches too much: add a patient or a date range.")
        try:
            study_query(**self.criteria(cleaned))
        except CriteriaError as exc:
            message = str(exc)
            self.add_error(_criteria_field(message), message[:1].upper() + message[1:] + ".")
        return cleaned

    @staticmethod
    def criteria(cleaned: dict[str, Any]) -> dict[str, Any]:
        return {
            "patient_id": cleaned.get("patient_id") or "",
            "patient_name": cleaned.get("patient_name") or "",
            "birth_date": cleaned.get("birth_date"),
            "date_from": cleaned.get("date_from"),
            "date_to": cleaned.get("date_to"),
            "modality": cleaned.get("modality") or "",
        }


def _criteria_field(message: str) -> str | None:
    for prefix, field in (
        ("patient name", "patient_name"),
        ("patient ID", "patient_id"),
        ("modality", "modality"),
        ("the date range", "date_to"),
    ):
        if message.startswith(prefix):
            return field
    return None


def _initial_from_request(auth: ReleaseAuthorization) -> dict[str, Any]:
    """Criteria a request suggests: staff review them before searching."""
    words = auth.legal_name.split()
    name = f"{words[-1]}^{words[0]}*" if len(words) > 1 else (f"{words[0]}*" if words else "")
    codes = auth.modalities.replace("\\", ",").replace(";", ",").split(",")
    modalities = ", ".join(code.strip() for code in codes if code.strip())
    initial: dict[str, Any] = {
        "request": auth.pk,
        "patient_id": auth.mrn,
        "patient_name": name,
        "birth_date": auth.birth_date,
        "date_from": auth.date_from,
        "date_to": auth.date_to,
        "modality": modalities.strip(),
    }
    if auth.facility.pacs_id is not None:
        initial["pacs"] = auth.facility.pacs_id
    return initial


def _authorization(user: User, value: object) -> ReleaseAuthorization | None:
    if value in (None, ""):
        return None
    try:
        return authorization_for_staff(user=user, authorization_id=int(str(value)))
    except (ValueError, ReleaseAuthorization.DoesNotExist):
        raise Http404("no such request") from None


@dataclass(frozen=True)
class MatchRow:
    match: StudyMatch
    study: Study | None  # the copy Lightbox already holds


def _matches_table(matches: list[StudyMatch]) -> list[MatchRow]:
    present = studies_present(study_uids=[m.study_instance_uid for m in matches])
    rows = [MatchRow(m, present.get(m.study_instance_uid)) for m in matches]
    rows.sort(key=lambda row: row.match.study_date or datetime.date.min, reverse=True)
    return rows


@login_required
@require_http_methods(["GET", "POST"])
def pacs_search_view(request: HttpRequest) -> HttpResponse:
    user = _staff(request)
    context: dict[str, Any] = {"nodes_exist": pacs_nodes_active().exists()}
    if request.method == "POST":
        form = PacsSearchForm(request.POST)
        auth = _authorization(user, request.POST.get("request"))
        if form.is_valid():
            node = form.cleaned_data["pacs"]
            try:
                matches = pacs_search(
                    node=node,
                    actor=user,
                    client=Client.of(request),
                    **form.criteria(form.cleaned_data),
                )
            except PacsError as exc:
                context["pacs_error"] = str(exc)
            else:
                context.update(
                    rows=_matches_table(matches), searched_node=node, limit_reached=len(matches) >= 500
                )
    else:
        auth = _authorization(user, request.GET.get("request"))
        form = PacsSearchForm(initial=_initial_from_request(auth) if auth else None)
    context.update(form=form, authorization=auth)
    status = HTTPStatus.OK if not form.is_bound or form.is_valid() else HTTPStatus.BAD_REQUEST
    return render(request, "sharing/staff/pacs_search.html", context, status=status)


class RetrieveForm(forms.Form):
    pacs = forms.ModelChoiceField(queryset=PacsNode.objects.none())
    study_instance_uid = forms.RegexField(regex=r"^[0-9]+(\.[0-9]+)*$", max_length=64)
    request = forms.IntegerField(required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["pacs"].queryset = pacs_nodes_active()  # type: ignore[attr-defined]


@login_required
@require_POST
def pacs_retrieve_view(request: HttpRequest) -> HttpResponse:
    user = _staff(request)
    form = RetrieveForm(request.POST)
    if not form.is_valid():
        messages.error(
            request,
            "That study cannot be retrieved: "
            + "; ".join(
                f"{field}: {' '.join(str(e) for e in errors)}" for field, errors in form.errors.items()
            ),
        )
        return redirect("pacs-search")
    auth = _authorization(user, form.cleaned_data.get("request"))
    try:
        job = retrieve_start(
            node=form.cleaned_data["pacs"],
            study_instance_uid=form.cleaned_data["study_instance_uid"],
            actor=user,
            authorization=auth,
            client=Client.of(request),
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("pacs-search")
    return redirect("pacs-retrieval", job_id=job.pk)


def _job(user: User, job_id: int) -> RetrieveJob:
    try:
        return retrieve_job_get(user=user, job_id=job_id)
    except RetrieveJob.DoesNotExist:
        raise Http404("no such retrieval") from None


def job_progress(job: RetrieveJob) -> dict[str, Any]:
    return {
        "id": job.pk,
        "status": job.status,
        "status_display": job.get_status_display(),
        "remaining": job.remaining,
        "completed": job.completed,
        "failed": job.failed,
        "warning": job.warning,
        "message": job.message,
        "finished": job.status in FINISHED,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }


@login_required
@require_GET
def pacs_retrieval(request: HttpRequest, job_id: int) -> HttpResponse:
    user = _staff(request)
    job = _job(user, job_id)
    retrieve_audit_viewed(
        user=user,
        client=Client.of(request),
        detail={"page": "PACS retrieval", "job": job.pk, "study": job.study_instance_uid},
    )
    return render(
        request,
        "sharing/staff/pacs_retrieval.html",
        {
            "job": job,
            "finished": job.status in FINISHED,
            "status_url": reverse("pacs-retrieval-json", args=[job.pk]),
        },
    )


@login_required
@require_GET
def pacs_retrieval_json(request: HttpRequest, job_id: int) -> JsonResponse:
    user = _staff(request)
    response = JsonResponse(job_progress(_job(user, job_id)))
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_GET
def pacs_retrievals(request: HttpRequest) -> HttpResponse:
    user = _staff(request)
    jobs = retrieve_jobs_recent(user=user)
    retrieve_audit_viewed(
        user=user, client=Client.of(request), detail={"list": "PACS retrievals", "shown": len(jobs)}
    )
    return render(request, "sharing/staff/pacs_retrievals.html", {"jobs": jobs})
