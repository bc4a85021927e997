from __future__ import annotations

import pytest
from django.template import Context, Template
from django.urls import NoReverseMatch, reverse, set_script_prefix

from sharing.routes.paths import UidPaths, uid_path

UID, SERIES = "1.2.840.113619.2.55.3", "1.2.840.113619.2.55.3.1"


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("home", ()),
        ("share-list", ()),
        ("study", (UID,)),
        ("study-thumbnail", (UID,)),
        ("share:study", (UID,)),
        ("series-thumbnail", (UID, SERIES)),
        ("dicomweb-series", (UID, SERIES)),
    ],
)
@pytest.mark.parametrize("prefix", ["/", "/portal/"])
def test_a_path_is_what_reverse_gives(name, args, prefix):
    set_script_prefix(prefix)
    try:
        assert uid_path(name, *args) == reverse(name, args=args)
        assert uid_path(name, *args).startswith(prefix)
    finally:
        set_script_prefix("/")


def test_what_is_not_a_uid_is_refused_as_reverse_would():
    with pytest.raises(NoReverseMatch):
        uid_path("study", "1.2/../x")


@pytest.mark.parametrize("prefix", ["/", "/portal/"])
def test_the_template_tag_gives_what_url_gives(prefix):
    set_script_prefix(prefix)
    try:
        # Built twice in one render: the second comes from the render's shared UidPaths.
        rendered = Template(
            "{% load lightbox %}{% path 'series-thumbnail' a b %} {% path 'series-thumbnail' b a %}"
            " {% url 'series-thumbnail' a b %} {% url 'series-thumbnail' b a %}"
        ).render(Context({"a": UID, "b": SERIES}))
    finally:
        set_script_prefix("/")
    ours_ab, ours_ba, theirs_ab, theirs_ba = rendered.split(" ")
    assert (ours_ab, ours_ba) == (theirs_ab, theirs_ba)
    assert ours_ab.startswith(prefix)
    assert ours_ab != ours_ba


def test_paths_keep_the_prefix_they_were_made_with():
    set_script_prefix("/portal/")
    try:
        paths = UidPaths()
    finally:
        set_script_prefix("/")
    assert paths("study", UID) == "/portal" + reverse("study", args=[UID])
