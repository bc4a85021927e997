"""Staff: personal API tokens for DICOMweb (``/staff/api-tokens/…``)."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from sharing.views import tokens

urlpatterns: list[URLPattern | URLResolver] = [
    path("staff/api-tokens/", tokens.api_token_list, name="api-token-list"),
    path("staff/api-tokens/new", tokens.api_token_new, name="api-token-create"),
    path("staff/api-tokens/<int:token_id>/revoke", tokens.api_token_revoke_view, name="api-token-revoke"),
]
