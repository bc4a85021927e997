"""``reverse`` for routes whose only arguments are UIDs, worked out once per route and process.

Django's ``reverse`` costs some 25 µs; a page of 24 study cards names five routes per card, a
search answers 25 results with a URL each. Each route is reversed once with stand-ins for its UIDs
and afterwards filled in. The result is keyed by script prefix and URLconf, both of which
``reverse`` depends on; reading those two is itself a few microseconds (they live in context-local
storage), so code that builds many paths takes a ``UidPaths`` and reads them once.
"""

from __future__ import annotations

import functools

from django.urls import get_script_prefix, get_urlconf, reverse

from sharing.routes.uids import IS_UID

# Matches the UID pattern of the routes, and appears in no path of ours.
_STAND_IN = "0.0.1234567890987654321"


class UidPaths:
    """``uid_path`` for the current request's script prefix and URLconf, read once."""

    __slots__ = ("_prefix", "_urlconf")

    def __init__(self) -> None:
        self._prefix = get_script_prefix()
        self._urlconf = get_urlconf()

    def __call__(self, name: str, *uids: str) -> str:
        pieces = _pieces(self._prefix, self._urlconf, name, len(uids))
        if pieces is None or not all(map(IS_UID, uids)):
            return reverse(name, args=uids, urlconf=self._urlconf)
        return "".join(piece + uid for piece, uid in zip(pieces, [*uids, ""], strict=True))


def uid_path(name: str, *uids: str) -> str:
    """``reverse(name, args=uids)``, for a route whose arguments are all UIDs (or that has none)."""
    return UidPaths()(name, *uids)


@functools.cache
def _pieces(prefix: str, urlconf: str | None, name: str, count: int) -> tuple[str, ...] | None:
    parts = reverse(name, args=[_STAND_IN] * count, urlconf=urlconf).split(_STAND_IN)
    return tuple(parts) if len(parts) == count + 1 else None
