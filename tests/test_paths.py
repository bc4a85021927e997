from __future__ import annotations

import pytest
from django.urls import NoReverseMatch, reverse, set_script_prefix

from sharing.routes.paths import uid_path

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
