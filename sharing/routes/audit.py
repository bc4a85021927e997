from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from sharing.views import audit

urlpatterns: list[URLPattern | URLResolver] = [
    path("staff/audit/", audit.audit_search, name="audit-search"),
    path("staff/audit/export.csv", audit.audit_export_csv, name="audit-export-csv"),
    path("staff/audit/export.xml", audit.audit_export_xml, name="audit-export-xml"),
    path("access/", audit.access_history, name="access-history"),
]
