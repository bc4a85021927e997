"""``{% path 'name' uid … %}``: ``{% url %}`` for routes whose arguments are UIDs, without
reversing the route each time (``sharing.routes.paths``). For the busiest pages: the library's
cards and every page's header.

The filters ``person_name``, ``patient_sex`` and ``shared_by`` say who the images are of, and who
shared them, in words a reader recognises."""

from __future__ import annotations

from django import template
from django.template import Context

from sharing.dicom.demographics import patient_sex_display, person_name_display
from sharing.models import Share
from sharing.routes.paths import UidPaths

register = template.Library()

_PATHS = "lightbox.paths"


@register.simple_tag(takes_context=True)
def path(context: Context, name: str, *uids: str) -> str:
    # One UidPaths per template rendered: a page's cards share it.
    paths: UidPaths | None = context.render_context.get(_PATHS)
    if paths is None:
        paths = context.render_context[_PATHS] = UidPaths()
    return paths(name, *uids)


@register.filter
def person_name(value: str) -> str:
    return person_name_display(value or "")


@register.filter
def patient_sex(value: str) -> str:
    return patient_sex_display(value or "")


@register.filter
def shared_by(share: Share) -> str:
    """The share's owner as the recipient knows them: the account's name, else its email.

    Nothing else about the account (its role, other shares, other patients) is shown.
    """
    owner = share.owner
    return owner.get_full_name() or owner.email
