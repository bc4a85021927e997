"""The audit trail's hash chain, its verification, and (on PostgreSQL) the append-only trigger."""

from __future__ import annotations

import threading
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, close_old_connections, connection, transaction

from sharing.models import AuditEvent
from sharing.services.audit import NO_CLIENT, Client, audit_event_record
from sharing.services.audit_chain import GENESIS_HASH, ChainProblem, audit_chain_verify, entry_hash
from tests.support.factories import patient_user

pytestmark = pytest.mark.django_db
on_postgres = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL only")


def record(label: str = "someone@example.com", **extra) -> AuditEvent:
    return audit_event_record(
        action=AuditEvent.Action.VIEW,
        client=NO_CLIENT,
        actor_kind=AuditEvent.ActorKind.USER,
        actor_label=label,
        **extra,
    )


def tamper(sql: str, params: list[str | int]) -> None:
    """Change history behind the application's back, as someone with database access could."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Rolled back with the test's transaction; ordinary triggers do not fire for a replica.
            cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(sql, params)
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = origin")


@pytest.fixture
def three_events() -> list[AuditEvent]:
    return [record("a@example.com"), record("b@example.com"), record("c@example.com")]


def test_each_event_links_to_the_one_before(three_events):
    first, second, third = three_events
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.entry_hash
    assert third.prev_hash == second.entry_hash
    assert len({e.entry_hash for e in three_events}) == 3
    assert all(len(e.entry_hash) == 64 for e in three_events)


def test_the_hash_read_back_from_the_database_matches_the_one_written():
    jane = patient_user("jane@example.com", "MRN-1001")
    event = audit_event_record(
        action=AuditEvent.Action.DOWNLOAD,
        client=Client(
            address="2001:0db8:0000::0001", user_agent="Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"
        ),
        actor_user=jane,
        patient=jane.patients.get(),
        study_instance_uid="1.2.3",
        detail={"kind": "dicom", "ratio": 2.0, "fraction": 0.1, "nested": {"z": [1, "é"], "a": None}},
    )
    stored = AuditEvent.objects.get(pk=event.pk)
    assert entry_hash(stored, prev_hash=stored.prev_hash) == event.entry_hash == stored.entry_hash


def test_verify_audit_reports_an_intact_chain(three_events):
    out = StringIO()
    call_command("verify_audit", stdout=out)
    assert "Audit chain intact: 3 events verified" in out.getvalue()
    assert three_events[-1].entry_hash in out.getvalue()


def test_an_empty_trail_is_intact():
    report = audit_chain_verify()
    assert report.intact
    assert report.verified == 0


def test_it_finds_an_event_whose_content_was_changed(three_events):
    changed = three_events[1]
    tamper("UPDATE sharing_auditevent SET actor_label = %s WHERE id = %s", ["nobody@example.com", changed.pk])

    report = audit_chain_verify()

    assert not report.intact
    assert report.first_break is not None
    assert report.first_break.event_id == changed.pk
    assert report.first_break.problem is ChainProblem.CONTENT_CHANGED
    assert report.verified == 1
    err = StringIO()
    with pytest.raises(CommandError, match=f"broken at event {changed.pk}"):
        call_command("verify_audit", stdout=StringIO(), stderr=err)
    assert "content changed" in err.getvalue()


def test_it_finds_an_event_whose_hash_was_recomputed_after_a_change(three_events):
    _, second, third = three_events
    second.actor_label = "nobody@example.com"
    forged = entry_hash(second, prev_hash=second.prev_hash)
    tamper(
        "UPDATE sharing_auditevent SET actor_label = %s, entry_hash = %s WHERE id = %s",
        ["nobody@example.com", forged, second.pk],
    )

    report = audit_chain_verify()

    assert report.first_break is not None
    assert report.first_break.event_id == third.pk
    assert report.first_break.problem is ChainProblem.LINK_BROKEN


def test_it_finds_a_removed_event(three_events):
    _, second, third = three_events
    tamper("DELETE FROM sharing_auditevent WHERE id = %s", [second.pk])

    report = audit_chain_verify()

    assert report.first_break is not None
    assert report.first_break.event_id == third.pk
    assert report.first_break.problem is ChainProblem.LINK_BROKEN


def test_it_finds_that_the_start_of_the_chain_was_removed(three_events):
    tamper("DELETE FROM sharing_auditevent WHERE id = %s", [three_events[0].pk])

    report = audit_chain_verify()

    assert report.first_break is not None
    assert report.first_break.event_id == three_events[1].pk
    assert report.first_break.problem is ChainProblem.MISSING_PREDECESSOR


def test_it_can_list_every_break(three_events):
    tamper(
        "UPDATE sharing_auditevent SET actor_label = 'x' WHERE id IN (%s, %s)",
        [three_events[0].pk, three_events[2].pk],
    )

    report = audit_chain_verify(stop_at_first=False)

    assert [b.event_id for b in report.breaks] == [three_events[0].pk, three_events[2].pk]


def test_events_from_before_the_chain_are_counted_but_not_a_break():
    AuditEvent.objects.bulk_create(
        [AuditEvent(action=AuditEvent.Action.VIEW, actor_kind=AuditEvent.ActorKind.SYSTEM)]
    )  # as written before migration 0004: no hash
    record()
    record()

    report = audit_chain_verify()

    assert report.intact
    assert (report.unsealed_before_chain, report.verified) == (1, 2)


def test_an_event_without_a_hash_inside_the_chain_is_a_break():
    record()
    AuditEvent.objects.bulk_create(
        [AuditEvent(action=AuditEvent.Action.VIEW, actor_kind=AuditEvent.ActorKind.SYSTEM)]
    )
    unsealed = AuditEvent.objects.latest("pk")

    report = audit_chain_verify()

    assert report.first_break is not None
    assert report.first_break.event_id == unsealed.pk
    assert report.first_break.problem is ChainProblem.UNSEALED


def test_it_records_inside_the_callers_transaction_and_goes_with_its_rollback():
    def change_that_fails() -> None:
        with transaction.atomic():
            record("rolled-back@example.com")
            raise RuntimeError

    record()
    with pytest.raises(RuntimeError):
        change_that_fails()
    record()
    assert not AuditEvent.objects.filter(actor_label="rolled-back@example.com").exists()
    assert audit_chain_verify().verified == 2


@on_postgres
@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE sharing_auditevent SET actor_label = 'x'",
        "DELETE FROM sharing_auditevent",
        "TRUNCATE sharing_auditevent",
    ],
)
def test_the_database_refuses_to_change_or_remove_audit_events(three_events, sql):
    with connection.cursor() as cursor:
        # The test database allows TRUNCATE for its flush between tests; this session does not.
        cursor.execute("SET LOCAL lightbox.audit_truncate = 'deny'")
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # TRUNCATE refuses pending FK checks first
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            cursor.execute(sql)
    assert AuditEvent.objects.count() == 3
    assert audit_chain_verify().intact


@on_postgres
@pytest.mark.django_db(transaction=True)
def test_writers_on_separate_connections_keep_one_intact_chain():
    per_thread = 15
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def write(name: str) -> None:
        try:
            start.wait()
            for n in range(per_thread):
                with transaction.atomic():
                    record(f"{name}-{n}@example.com")
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=write, args=(f"t{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not errors
    report = audit_chain_verify()
    assert report.intact, report.breaks
    assert report.verified == 3 * per_thread
