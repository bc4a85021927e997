"""``manage.py export_audit --since 2026-01-01 --until 2026-01-31 [--format xml|csv] [-o file]``."""

from __future__ import annotations

import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sharing.selectors.audit import AuditFilters, audit_events_matching
from sharing.services.audit_export import audit_export_lines, audit_export_record

EXPORT_BATCH = 2000


def _date(value: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(value)
    except ValueError as error:
        raise CommandError(f"not a date (YYYY-MM-DD): {value}") from error


class Command(BaseCommand):
    help = "Write the audit events of a date range as DICOM audit messages (XML) or CSV."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--since", required=True, help="first day, YYYY-MM-DD")
        parser.add_argument("--until", required=True, help="last day (inclusive), YYYY-MM-DD")
        parser.add_argument("--format", choices=["xml", "csv"], default="xml")
        parser.add_argument("-o", "--output", help="file to write (default: standard output)")

    def handle(self, *args: Any, **options: Any) -> None:
        since, until = _date(options["since"]), _date(options["until"])
        if since > until:
            raise CommandError("--since is after --until")
        filters = AuditFilters(since=since, until=until)
        fmt = options["format"]
        audit_export_record(fmt=fmt, filters=filters, actor_label="manage.py export_audit")
        events = audit_events_matching(filters=filters).order_by("pk").iterator(chunk_size=EXPORT_BATCH)
        output = options["output"]
        if not output:
            for line in audit_export_lines(events=events, fmt=fmt):
                self.stdout.write(line, ending="")
            return
        with open(output, "w", encoding="utf-8", newline="") as stream:
            stream.writelines(audit_export_lines(events=events, fmt=fmt))
