"""Reads, each applying the access rule, split by area; import from here.

The one access rule for studies is ``studies_visible_to``; every other study read narrows it.
"""

from sharing.selectors.studies import (
    report_pdf_get_for_user,
    series_get_for_user,
    series_received_within,
    studies_awaiting_reconciliation,
    studies_for_download,
    studies_visible_to,
    study_get_for_user,
    study_library_for_user,
    study_list_for_user,
    study_modalities_for_user,
    study_reports,
)

__all__ = [
    "report_pdf_get_for_user",
    "series_get_for_user",
    "series_received_within",
    "studies_awaiting_reconciliation",
    "studies_for_download",
    "studies_visible_to",
    "study_get_for_user",
    "study_library_for_user",
    "study_list_for_user",
    "study_modalities_for_user",
    "study_reports",
]
