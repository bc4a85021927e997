"""Share links as services: tokens, codes, the lock, opens, revoke, extend and expiry."""

from __future__ import annotations

import datetime
import io

import pytest
import time_machine
from django.core import mail
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.utils import timezone

from sharing.models import AuditEvent, Patient, Share, Study
from sharing.services.audit import NO_CLIENT, Client
from sharing.services.shares import (
    Check,
    share_check,
    share_create,
    share_extend,
    share_lookup,
    share_open,
    share_revoke,
    shares_expire_sweep,
    token_hash,
)
from tests.support.factories import make_study

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def study(tmp_path, patient, jane) -> Study:
    return make_study(tmp_path, patient, "jane", pdf=False)


def create(owner, study, **overrides):
    options = {
        "owner": owner,
        "studies": [study],
        "expires_at": timezone.now() + datetime.timedelta(days=7),
        "protection": Share.Protection.CODE,
        "allow_download": False,
    }
    options.update(overrides)
    return share_create(**options)


def test_a_token_is_long_random_url_safe_and_stored_only_as_its_hash(jane, study):
    created = create(jane, study)

    assert len(created.token) == 32
    assert set(created.token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert created.share.token_hash == token_hash(created.token) != created.token
    assert share_lookup(token=created.token) == created.share
    assert share_lookup(token=created.token[:-1] + ("A" if created.token[-1] != "A" else "B")) is None


def test_a_thousand_tokens_are_unique_and_absent_from_a_database_dump(jane, study):
    tokens = {create(jane, study, protection=Share.Protection.NONE).token for _ in range(1000)}
    dump = io.StringIO()
    call_command("dumpdata", "sharing", stdout=dump)

    assert len(tokens) == 1000
    text = dump.getvalue()
    assert not [token for token in tokens if token in text]


def test_the_access_code_is_shown_once_and_stored_hashed(jane, study):
    created = create(jane, study)

    assert len(created.code) == 11
    assert created.code[5] == "-"
    assert created.code.replace("-", "") not in created.share.code_hash
    assert (
        share_check(share=created.share, answer=created.code.lower(), client=Client(address="10.0.0.1"))
        is Check.PASSED
    )


def test_it_shares_only_the_owners_own_studies(jane, john, study, staff):
    with pytest.raises(ValidationError):
        create(john, study)
    with pytest.raises(ValidationError):
        create(staff, study)  # staff see every study but share none in their own name


def test_it_refuses_expiry_beyond_ninety_days_or_in_the_past(jane, study):
    with pytest.raises(ValidationError):
        create(jane, study, expires_at=timezone.now() + datetime.timedelta(days=91))
    with pytest.raises(ValidationError):
        create(jane, study, expires_at=timezone.now() - datetime.timedelta(minutes=1))


def test_creating_a_share_is_audited_for_each_study(jane, study):
    created = create(jane, study)

    event = AuditEvent.objects.get(action=AuditEvent.Action.SHARE_CREATE)
    assert event.share == created.share
    assert event.actor_user == jane
    assert event.patient == study.patient
    assert event.study_instance_uid == study.study_instance_uid


def test_the_recipient_gets_the_link_by_email_but_never_the_code(
    jane, study, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        created = create(
            jane,
            study,
            recipient_name="Dr Who",
            recipient_email="dr@example.org",
            link_for=lambda token: f"https://lightbox.example/s/{token}",
        )

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["dr@example.org"]
    assert f"/s/{created.token}" in message.body
    assert created.code not in message.body
    assert created.code.replace("-", "") not in message.body


def test_wrong_codes_lock_the_share_and_tell_the_patient(
    jane, study, settings, django_capture_on_commit_callbacks
):
    settings.LIGHTBOX_SHARE_MAX_FAILURES = 3
    settings.LIGHTBOX_SHARE_FAILURES_PER_MINUTE = 100
    created = create(jane, study)

    with django_capture_on_commit_callbacks(execute=True):
        outcomes = [
            share_check(share=created.share, answer="WRONG-CODE1", client=Client(address="10.0.0.9"))
            for _ in range(3)
        ]

    assert outcomes == [Check.WRONG, Check.WRONG, Check.LOCKED]
    created.share.refresh_from_db()
    assert created.share.state_at(timezone.now()) == Share.State.LOCKED
    # Once locked, even the right code no longer opens it.
    assert (
        share_check(share=created.share, answer=created.code, client=Client(address="10.0.0.9")) is Check.GONE
    )
    assert AuditEvent.objects.filter(action=AuditEvent.Action.SHARE_VERIFY_FAIL).count() == 3
    assert AuditEvent.objects.filter(action=AuditEvent.Action.SHARE_LOCK).count() == 1
    assert [m.to for m in mail.outbox] == [[jane.email]]
    assert "locked" in mail.outbox[0].subject


def test_a_burst_of_wrong_answers_is_throttled_per_share_and_per_address(jane, study, settings):
    settings.LIGHTBOX_SHARE_MAX_FAILURES = 100
    settings.LIGHTBOX_SHARE_FAILURES_PER_MINUTE = 2
    settings.LIGHTBOX_SHARE_FAILURES_PER_CLIENT = 3
    first, second = create(jane, study), create(jane, study)

    assert [
        share_check(share=first.share, answer="x", client=Client(address="10.0.0.1")) for _ in range(3)
    ] == [
        Check.WRONG,
        Check.WRONG,
        Check.THROTTLED,
    ]
    # Another address is throttled on the same share too (a distributed guess)...
    assert (
        share_check(share=first.share, answer=first.code, client=Client(address="10.0.0.2"))
        is Check.THROTTLED
    )
    # ...and the first address, after one more failure elsewhere, on every share.
    assert share_check(share=second.share, answer="x", client=Client(address="10.0.0.1")) is Check.WRONG
    assert (
        share_check(share=second.share, answer=second.code, client=Client(address="10.0.0.1"))
        is Check.THROTTLED
    )
    assert (
        share_check(share=second.share, answer=second.code, client=Client(address="10.0.0.3")) is Check.PASSED
    )


def test_the_throttle_is_shared_through_redis(jane, study, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "portal.redis_cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:6379/9",
        }
    }
    from django.core.cache import cache

    cache.clear()
    settings.LIGHTBOX_SHARE_MAX_FAILURES = 100
    settings.LIGHTBOX_SHARE_FAILURES_PER_MINUTE = 1
    created = create(jane, study)
    try:
        assert share_check(share=created.share, answer="x", client=Client(address="10.0.0.1")) is Check.WRONG
        assert (
            share_check(share=created.share, answer=created.code, client=Client(address="10.0.0.1"))
            is Check.THROTTLED
        )
    finally:
        cache.clear()


def test_the_birth_date_check_compares_the_patients_date(jane, study):
    created = create(jane, study, protection=Share.Protection.BIRTH_DATE)

    assert created.code == ""
    assert share_check(share=created.share, answer="1980-01-02", client=NO_CLIENT) is Check.WRONG
    assert share_check(share=created.share, answer="1980-01-01", client=NO_CLIENT) is Check.PASSED


def test_a_birth_date_share_needs_a_birth_date_on_record(jane, study):
    Patient.objects.filter(pk=study.patient_id).update(birth_date=None)
    study = Study.objects.select_related("patient").get(pk=study.pk)

    with pytest.raises(ValidationError):
        create(jane, study, protection=Share.Protection.BIRTH_DATE)


def test_opens_are_counted_and_a_used_up_share_refuses_new_opens(
    jane, study, django_capture_on_commit_callbacks
):
    created = create(jane, study, max_opens=2, notify_on_open=True)

    with django_capture_on_commit_callbacks(execute=True):
        assert share_open(share=created.share, client=Client(address="10.0.0.1"))
        assert share_open(share=created.share, client=Client(address="10.0.0.1"))
        assert not share_open(share=created.share, client=Client(address="10.0.0.1"))

    share = Share.objects.get(pk=created.share.pk)
    assert share.open_count == 2
    assert share.state_at(timezone.now(), opening=True) == Share.State.EXHAUSTED
    # Sessions already opened go on.
    assert share.state_at(timezone.now()) == Share.State.ACTIVE
    assert AuditEvent.objects.filter(action=AuditEvent.Action.SHARE_OPEN).count() == 2
    # The patient hears about the first open only.
    assert [m.to for m in mail.outbox] == [[jane.email]]


def test_revoking_ends_the_share_at_once_and_is_audited(jane, study):
    created = create(jane, study)

    assert share_revoke(share=created.share, actor=jane)
    assert not share_revoke(share=created.share, actor=jane)
    assert created.share.state_at(timezone.now()) == Share.State.REVOKED
    assert not share_open(share=created.share, client=NO_CLIENT)
    event = AuditEvent.objects.get(action=AuditEvent.Action.SHARE_REVOKE)
    assert event.actor_user == jane


def test_extending_stays_within_ninety_days(jane, study):
    created = create(jane, study)
    later = timezone.now() + datetime.timedelta(days=60)

    share_extend(share=created.share, actor=jane, expires_at=later)

    assert Share.objects.get(pk=created.share.pk).expires_at == later
    with pytest.raises(ValidationError):
        share_extend(
            share=created.share, actor=jane, expires_at=timezone.now() + datetime.timedelta(days=100)
        )
    share_revoke(share=created.share, actor=jane)
    with pytest.raises(ValidationError):
        share_extend(share=created.share, actor=jane, expires_at=later)


def test_it_expires_on_time_and_the_expiry_is_audited_once(jane, study):
    created = create(jane, study, expires_at=timezone.now() + datetime.timedelta(hours=1))

    with time_machine.travel(timezone.now() + datetime.timedelta(minutes=59)):
        assert created.share.state_at(timezone.now()) == Share.State.ACTIVE
        assert shares_expire_sweep() == 0
    with time_machine.travel(timezone.now() + datetime.timedelta(minutes=61)):
        assert created.share.state_at(timezone.now()) == Share.State.EXPIRED
        assert share_check(share=created.share, answer=created.code, client=NO_CLIENT) is Check.GONE
        assert not share_open(share=created.share, client=NO_CLIENT)
        assert shares_expire_sweep() == 1
        assert shares_expire_sweep() == 0
    expired = AuditEvent.objects.get(action=AuditEvent.Action.SHARE_EXPIRE)
    assert expired.actor_kind == AuditEvent.ActorKind.SYSTEM
