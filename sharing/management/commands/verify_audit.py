"""``manage.py verify_audit``: check the audit trail's hash chain; non-zero exit if it is broken."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sharing.services.audit_chain import audit_chain_verify


class Command(BaseCommand):
    help = "Recompute the audit trail's hash chain and report the first broken link."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--all", action="store_true", help="report every break, not only the first")

    def handle(self, *args: Any, **options: Any) -> None:
        report = audit_chain_verify(stop_at_first=not options["all"])
        if report.unsealed_before_chain:
            self.stdout.write(
                f"{report.unsealed_before_chain} events predate the hash chain (not verifiable)."
            )
        for broken in report.breaks:
            self.stderr.write(
                f"event {broken.event_id} at {broken.occurred_at.isoformat()}: {broken.problem}"
            )
        if not report.intact:
            first = report.breaks[0]
            raise CommandError(
                f"audit chain broken at event {first.event_id} ({first.problem.name.lower()}); "
                f"{len(report.breaks)} break(s) reported, {report.verified} events verified"
            )
        self.stdout.write(
            f"Audit chain intact: {report.verified} events verified; head {report.head_hash or '-'}"
        )
