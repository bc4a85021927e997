"""Release requests: the patient's side (/requests/) and the records staff workspace (/staff/)."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from sharing.views import authorizations, workspace

urlpatterns: list[URLPattern | URLResolver] = [
    path("requests/", authorizations.request_list, name="request-list"),
    path("requests/new/", authorizations.request_new, name="request-new"),
    path("requests/<int:pk>/", authorizations.request_detail, name="request-detail"),
    path("requests/<int:pk>/reply/", authorizations.request_reply, name="request-reply"),
    path("requests/<int:pk>/identity/", authorizations.request_id_document, name="request-id-document"),
    path("requests/<int:pk>/revoke/", authorizations.request_revoke, name="request-revoke"),
    path("requests/<int:pk>/authorization.pdf", authorizations.request_pdf, name="request-pdf"),
    path("staff/requests/", workspace.queue, name="workspace-queue"),
    path("staff/requests/<int:pk>/", workspace.request_page, name="workspace-request"),
    path("staff/requests/<int:pk>/assign/", workspace.request_assign, name="workspace-assign"),
    path("staff/requests/<int:pk>/verify/", workspace.request_verify, name="workspace-verify"),
    path("staff/requests/<int:pk>/link/", workspace.request_link, name="workspace-link"),
    path("staff/requests/<int:pk>/studies/", workspace.request_attach, name="workspace-attach"),
    path("staff/requests/<int:pk>/note/", workspace.request_note, name="workspace-note"),
    path("staff/requests/<int:pk>/hold/", workspace.request_hold, name="workspace-hold"),
    path("staff/requests/<int:pk>/extend/", workspace.request_extend, name="workspace-extend"),
    path("staff/requests/<int:pk>/deny/", workspace.request_deny, name="workspace-deny"),
    path("staff/requests/<int:pk>/release/", workspace.request_release, name="workspace-release"),
    path("staff/requests/<int:pk>/authorization.pdf", workspace.request_pdf, name="workspace-pdf"),
    path(
        "staff/requests/<int:pk>/identity-document",
        workspace.request_id_document,
        name="workspace-id-document",
    ),
    path("staff/unmatched/<int:pk>/", workspace.reconcile, name="reconcile-study"),
    path("staff/unmatched/<int:pk>/assign/", workspace.reconcile_assign, name="reconcile-assign"),
    path("staff/unmatched/<int:pk>/reject/", workspace.reconcile_reject, name="reconcile-reject"),
]
