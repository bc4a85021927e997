from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from sharing.selectors import study_list_for_user


@login_required
def home(request: HttpRequest) -> HttpResponse:
    studies = study_list_for_user(user=request.user)  # type: ignore[arg-type]
    return render(request, "sharing/home.html", {"studies": studies})
