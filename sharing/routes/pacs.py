"""Records staff: query/retrieve from the hospital PACS (``/staff/pacs/…``)."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from sharing.views import pacs

urlpatterns: list[URLPattern | URLResolver] = [
    path("staff/pacs/", pacs.pacs_search_view, name="pacs-search"),
    path("staff/pacs/retrieve", pacs.pacs_retrieve_view, name="pacs-retrieve"),
    path("staff/pacs/retrievals/", pacs.pacs_retrievals, name="pacs-retrievals"),
    path("staff/pacs/retrievals/<int:job_id>/", pacs.pacs_retrieval, name="pacs-retrieval"),
    path("staff/pacs/retrievals/<int:job_id>.json", pacs.pacs_retrieval_json, name="pacs-retrieval-json"),
]
