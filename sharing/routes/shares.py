"""Share links: the patient's pages (``/shares/…``) and the recipient's (``/s/…``).

Everything a recipient reaches after opening a link lives in the "share" URL namespace, which is
how the views know to resolve the share grant instead of a signed-in user.
"""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, include, path, re_path

from sharing.access.decorators import for_share
from sharing.routes.studies import study_patterns
from sharing.services.shares import TOKEN_PATTERN
from sharing.views import share_access, shares

recipient_patterns: list[URLPattern | URLResolver] = [
    path("", for_share(share_access.share_home), name="home"),
    path("leave", share_access.share_leave, name="leave"),
    path("dicomweb/", include("sharing.routes.dicomweb")),
    *study_patterns(for_share),
]

urlpatterns: list[URLPattern | URLResolver] = [
    path("shares/", shares.share_list, name="share-list"),
    path("shares/new", shares.share_new, name="share-create"),
    path("shares/<int:share_id>/", shares.share_detail, name="share-detail"),
    path("shares/<int:share_id>/revoke", shares.share_revoke_view, name="share-revoke"),
    path("shares/<int:share_id>/extend", shares.share_extend_view, name="share-extend"),
    re_path(rf"^s/(?P<token>{TOKEN_PATTERN})$", share_access.share_open_view, name="share-open"),
    path("s/", include((recipient_patterns, "share"))),
    # A link an email client cut short, or ran on into the next character: the recipient is told
    # to check the link, as for one that does not exist.
    re_path(r"^s/(?P<token>[A-Za-z0-9_-]{16,})[^/]*$", share_access.share_link_not_found),
]
