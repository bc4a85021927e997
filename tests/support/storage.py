"""Looking into a test's local object store."""

from __future__ import annotations

from pathlib import Path


def stored_keys(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
