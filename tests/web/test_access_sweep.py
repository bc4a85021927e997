"""Who reaches what: every viewer role against every study endpoint, checked against one allow-list.

Roles: an anonymous visitor, patient A (Jane, who owns studies X and Y), patient B (John), the
holder of a share of study X only, records staff and an administrator; scripts holding one of
the staff member's API tokens (read, store, revoked, expired); and staff who got a session with
their password alone (through Django's admin sign-in, or any session that skipped the second
factor), who must reach nothing. Anything not on the allow-list must answer 302 (to sign in), 401,
403, 404 or 405, and show none of Jane's data.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from http import HTTPStatus

import pytest
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.test import Client as PasswordOnlyClient
from django.utils import timezone

from sharing.models import ApiToken, Share, Study, User
from sharing.services.shares import share_create
from sharing.services.tokens import api_token_create, api_token_revoke
from tests.support.clients import Client
from tests.support.factories import make_study

pytestmark = pytest.mark.django_db(transaction=True)

REFUSED = {
    HTTPStatus.FOUND,
    HTTPStatus.UNAUTHORIZED,
    HTTPStatus.FORBIDDEN,
    HTTPStatus.NOT_FOUND,
    HTTPStatus.METHOD_NOT_ALLOWED,
}
# What would give Jane away: her name, ID, birth date and her studies' descriptions.
JANES_DATA = (b"DOE", b"JANE", b"MRN-1001", b"19800101", b"1980-01-01", b"SWEEP STUDY")
CSRF_TOKEN = re.compile(rb'name="csrfmiddlewaretoken" value="[^"]*"')
ACCEPT = {
    "instance": 'multipart/related; type="application/dicom"; transfer-syntax=*',
    "study": 'multipart/related; type="application/dicom"; transfer-syntax=*',
    "frames": "multipart/related; type=application/octet-stream; transfer-syntax=*",
    "rendered": "image/jpeg",
}
# Searches answer 200 to any viewer, narrowed to what they may see.
SEARCHES = {"qido studies"}
# The endpoints a read token reaches (DICOMweb); pages want a signed-in session.
DICOMWEB = {
    "qido studies",
    "qido series",
    "qido instances",
    "study metadata",
    "series metadata",
    "study",
    "instance",
    "frames",
    "rendered",
}
TOKEN_ROLES = ("read token", "store token", "revoked token", "expired token")


def endpoints(study: Study, root: str, dicomweb: str) -> dict[str, str]:
    series = study.series.get(modality="CT")
    pdf = study.series.get(modality="DOC").instances.get()
    instance = series.instances.order_by("instance_number")[0]
    uid, se, sop = study.study_instance_uid, series.series_instance_uid, instance.sop_instance_uid
    return {
        "study page": f"{root}studies/{uid}/",
        "viewer": f"{root}studies/{uid}/view",
        "thumbnail": f"{root}studies/{uid}/series/{se}/thumbnail",
        "study thumbnail": f"{root}studies/{uid}/thumbnail",
        "report pdf": f"{root}studies/{uid}/reports/{pdf.sop_instance_uid}.pdf",
        "download": f"{root}studies/{uid}/download",
        "jpeg download": f"{root}studies/{uid}/download/jpeg",
        "several download": f"{root}download?study={uid}",
        "qido studies": f"{dicomweb}/studies",
        "qido series": f"{dicomweb}/studies/{uid}/series",
        "qido instances": f"{dicomweb}/studies/{uid}/series/{se}/instances",
        "study metadata": f"{dicomweb}/studies/{uid}/metadata",
        "series metadata": f"{dicomweb}/studies/{uid}/series/{se}/metadata",
        "study": f"{dicomweb}/studies/{uid}",
        "instance": f"{dicomweb}/studies/{uid}/series/{se}/instances/{sop}",
        "frames": f"{dicomweb}/studies/{uid}/series/{se}/instances/{sop}/frames/1",
        "rendered": f"{dicomweb}/studies/{uid}/series/{se}/instances/{sop}/rendered",
    }


@pytest.fixture
def world(tmp_path, patient, jane, john, staff):
    x = make_study(tmp_path, patient, "x", description="SWEEP STUDY X")
    y = make_study(tmp_path, patient, "y", description="SWEEP STUDY Y", study_date="20250101")
    admin = User.objects.create_user("admin@example.com", "pw-123456789", role=User.Role.ADMIN, is_staff=True)
    TOTP.activate(admin, generate_totp_secret())
    created = share_create(
        owner=jane,
        studies=[x],
        expires_at=timezone.now() + datetime.timedelta(days=1),
        protection=Share.Protection.CODE,
        allow_download=True,
    )

    def signed_in(user: User) -> Client:
        client = Client()
        client.force_login(user)
        return client

    def password_only(user: User) -> PasswordOnlyClient:
        client = PasswordOnlyClient()
        client.force_login(user)  # a session that never saw the second factor
        return client

    def through_the_admin_sign_in(user: User) -> Client:
        client = Client()
        client.post("/admin/login/", {"username": user.email, "password": "pw-123456789"})
        return client

    holder = Client()
    assert holder.post(f"/s/{created.token}", {"answer": created.code}).status_code == HTTPStatus.FOUND
    tokens = {role: staff_token(staff, role) for role in TOKEN_ROLES}
    clients: dict[str, Callable[[], PasswordOnlyClient]] = {
        "anonymous": Client,
        "patient A": lambda: signed_in(jane),
        "patient B": lambda: signed_in(john),
        "share holder of X": lambda: holder,
        "records staff": lambda: signed_in(staff),
        "admin": lambda: signed_in(admin),
        "records staff, password only": lambda: password_only(staff),
        "admin, through the admin's sign-in": lambda: through_the_admin_sign_in(admin),
        **{role: _bearer_client(secret, n) for n, (role, secret) in enumerate(tokens.items())},
    }
    urls = {}
    for name, study in (("X", x), ("Y", y)):
        for kind, url in endpoints(study, "/", "/dicomweb").items():
            urls[(f"{kind} of {name}", "user")] = (kind, url)
        for kind, url in endpoints(study, "/s/", "/s/dicomweb").items():
            urls[(f"{kind} of {name}", "share")] = (kind, url)
    return clients, urls


def staff_token(staff: User, role: str) -> str:
    """A secret of one of the staff member's tokens, in the state the role names."""
    scope = ApiToken.Scope.STORE if role == "store token" else ApiToken.Scope.READ
    created = api_token_create(
        owner=staff, name=role, scopes=[scope], expires_at=timezone.now() + datetime.timedelta(days=1)
    )
    if role == "revoked token":
        api_token_revoke(token=created.token, actor=staff)
    if role == "expired token":
        ApiToken.objects.filter(pk=created.token.pk).update(expires_at=timezone.now())
    return created.secret


def _bearer_client(secret: str, n: int) -> Callable[[], Client]:
    """A script on a machine of its own, so that one token's failures throttle no other."""
    return lambda: Client(headers={"Authorization": f"Bearer {secret}"}, REMOTE_ADDR=f"10.0.0.{n + 1}")


def allowed(role: str, endpoint: str, route: str) -> bool:
    """The allow-list: who may see Jane's data where."""
    if role in TOKEN_ROLES:
        # A token works on DICOMweb alone, with the read scope, and not as a share.
        kind = endpoint.rsplit(" of ", 1)[0]
        return role == "read token" and route == "user" and kind in DICOMWEB
    if route == "user":
        return role in ("patient A", "records staff", "admin")
    # The share's search lists the shared study X, whichever study the sweep is looking at.
    return role == "share holder of X" and (endpoint.endswith(" of X") or endpoint.startswith("qido studies"))


def test_every_role_reaches_exactly_what_the_allow_list_says(world):
    clients, urls = world
    wrong: list[tuple[object, ...]] = []
    for role, make_client in clients.items():
        client = make_client()
        for (endpoint, route), (kind, url) in urls.items():
            response = client.get(url, HTTP_ACCEPT=ACCEPT.get(kind, "application/dicom+json, text/html"))
            body = b"".join(response.streaming_content) if response.streaming else response.content
            # A page's CSRF token is random letters: it once held "DOE" by chance.
            body = CSRF_TOKEN.sub(b"", body)
            if allowed(role, endpoint, route):
                if response.status_code != HTTPStatus.OK:
                    wrong.append((role, route, endpoint, response.status_code, "should be allowed"))
            elif kind in SEARCHES and response.status_code == HTTPStatus.OK:
                if any(marker in body for marker in JANES_DATA):
                    wrong.append((role, route, endpoint, 200, "search shows Jane's data"))
            elif response.status_code not in REFUSED:
                wrong.append((role, route, endpoint, response.status_code, "should be refused"))
            elif any(marker in body for marker in JANES_DATA):
                wrong.append((role, route, endpoint, response.status_code, "refusal shows Jane's data"))
    assert wrong == [], "\n".join(map(str, wrong))


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_no_viewer_can_write_through_a_study_endpoint(world, method):
    clients, urls = world
    wrong: list[tuple[object, ...]] = []
    # A store token may write, through STOW-RS: its own tests (test_stow.py) say how.
    for role in ("anonymous", "patient A", "patient B", "share holder of X", *TOKEN_ROLES[2:], "read token"):
        client = clients[role]()
        for (endpoint, route), (_kind, url) in urls.items():
            response = getattr(client, method)(url)
            if response.status_code not in REFUSED and response.status_code != HTTPStatus.BAD_REQUEST:
                wrong.append((role, route, endpoint, method, response.status_code))
            elif any(marker in response.content for marker in JANES_DATA):
                wrong.append((role, route, endpoint, method, "shows Jane's data"))
            if role == "share holder of X" and route == "share" and response.status_code not in (403, 405):
                wrong.append((role, route, endpoint, method, response.status_code, "share holder"))
    assert wrong == [], "\n".join(map(str, wrong))
    assert Study.objects.count() == 2


def test_token_pages_reach_only_their_owner_and_only_in_a_session(world, staff):
    """The API token pages: every role, against the list, the form, and another's token."""
    clients, _urls = world
    token = ApiToken.objects.get(name="read token")
    pages = {
        "list": "/staff/api-tokens/",
        "new": "/staff/api-tokens/new",
        "revoke page": f"/staff/api-tokens/{token.pk}/revoke",
    }
    allowed_pages = {
        "records staff": {"list", "new", "revoke page"},  # the owner of every token here
        "admin": {"list", "new"},  # their own list, empty; others' tokens only in /admin/
    }
    wrong: list[tuple[object, ...]] = []
    for role, make_client in clients.items():
        client = make_client()
        for page, url in pages.items():
            response = client.get(url)
            body = response.content
            if page in allowed_pages.get(role, set()):
                if response.status_code != HTTPStatus.OK:
                    wrong.append((role, page, response.status_code, "should be allowed"))
            elif response.status_code not in REFUSED:
                wrong.append((role, page, response.status_code, "should be refused"))
            elif token.prefix.encode() in body:
                wrong.append((role, page, response.status_code, "refusal shows the token"))
        if role != "records staff":
            response = client.post(pages["revoke page"])
            if response.status_code not in REFUSED:
                wrong.append((role, "revoke", response.status_code, "should be refused"))
        if role == "admin" and token.prefix.encode() in client.get(pages["list"]).content:
            wrong.append((role, "list", "shows another's token"))
    assert wrong == [], "\n".join(map(str, wrong))
    assert ApiToken.objects.get(pk=token.pk).revoked_at is None
