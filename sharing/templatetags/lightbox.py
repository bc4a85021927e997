"""``{% path 'name' uid … %}``: ``{% url %}`` for routes whose arguments are UIDs, without
reversing the route each time (``sharing.routes.paths``). For the busiest pages: the library's
cards and every page's header."""

from __future__ import annotations

from django import template
from django.template import Context

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
