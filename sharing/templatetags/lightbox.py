"""``{% path 'name' uid … %}``: ``{% url %}`` for routes whose arguments are UIDs, without
reversing the route each time (``sharing.routes.paths``). For the busiest pages: the library's
cards and every page's header."""

from __future__ import annotations

from django import template

from sharing.routes.paths import uid_path

register = template.Library()


@register.simple_tag
def path(name: str, *uids: str) -> str:
    return uid_path(name, *uids)
