"""The shared DICOM corpus beside the checkout (or at $LIGHTBOX_DICOM_CORPUS) and its MANIFEST.tsv."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

CORPUS_DIR = Path(
    os.environ.get("LIGHTBOX_DICOM_CORPUS")
    or Path(__file__).resolve().parents[2].parent / "shared" / "dicom-corpus"
)
MANIFEST = CORPUS_DIR / "MANIFEST.tsv"


@dataclass(frozen=True)
class CorpusFile:
    relative: str  # the manifest's path, relative to CORPUS_DIR
    notes: str
    dimensions: str  # rows x cols x frames; empty when the file declares none

    @property
    def path(self) -> Path:
        return CORPUS_DIR / self.relative

    @property
    def malformed(self) -> bool:
        # A data set encoded in implicit VR under an explicit transfer syntax contradicts what it
        # declares: refusing it ("cannot understand") is as right as storing it.
        return self.notes.startswith("MALFORMED") or "but found implicit VR" in self.notes


def corpus_files() -> list[CorpusFile]:
    """Every file the manifest lists, in its order; none when there is no corpus here."""
    if not MANIFEST.is_file():
        return []
    with MANIFEST.open(newline="", encoding="utf-8") as manifest:
        return [
            CorpusFile(row["path"], row["notes"], row["rows_x_cols_x_frames"])
            for row in csv.DictReader(manifest, delimiter="\t")
        ]
