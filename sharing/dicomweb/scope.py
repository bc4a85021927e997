"""Who is looking, and which studies they may see: the one question every DICOMweb endpoint asks.

A study outside the scope answers exactly like a study that does not exist (404), so nothing
leaks about it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from django.db.models import QuerySet
from django.http import HttpRequest

from sharing.models import AuditEvent, Study, User
from sharing.selectors import studies_visible_to
from sharing.services.audit import access_record


class ViewerScope(Protocol):
    def studies(self) -> QuerySet[Study]:
        """Every study this viewer may see; endpoints narrow it, never widen it."""
        ...

    def describe(self) -> str:
        """Who is looking, for the audit trail."""
        ...

    def record_access(
        self,
        *,
        action: AuditEvent.Action,
        remote_addr: str | None,
        study_instance_uid: str = "",
        detail: dict[str, Any] | None = None,
    ) -> None: ...


@dataclass(frozen=True)
class UserScope:
    user: User

    def studies(self) -> QuerySet[Study]:
        # The portal's one access rule, shared with the library, study pages and downloads.
        return studies_visible_to(self.user)

    def describe(self) -> str:
        return f"user:{self.user.email}"

    def record_access(
        self,
        *,
        action: AuditEvent.Action,
        remote_addr: str | None,
        study_instance_uid: str = "",
        detail: dict[str, Any] | None = None,
    ) -> None:
        access_record(
            user=self.user,
            action=action,
            remote_addr=remote_addr,
            study_instance_uid=study_instance_uid,
            detail=detail,
        )


def viewer_scope_for(request: HttpRequest) -> ViewerScope | None:
    """The scope of the request's viewer, or None if nobody is signed in."""
    user = request.user
    if isinstance(user, User) and user.is_authenticated and user.is_active:
        return UserScope(user)
    return None
