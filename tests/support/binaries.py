"""System programs the tests drive (dcmtk, Orthanc's tools): a missing one fails, never skips."""

from __future__ import annotations

import shutil

import pytest


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: .ci/run installs it with apt-get")
    return path
