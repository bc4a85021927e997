"""Every page carries a strict Content-Security-Policy, and no page needs it relaxed."""

from __future__ import annotations

from http import HTTPStatus

import pytest
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.urls import reverse

from sharing.models import User
from tests.support.factories import make_study, patient_user, records_staff
from tests.support.headers import assert_strict

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    "name", ["account_login", "account_signup", "account_reset_password", "account_email_verification_sent"]
)
def test_public_pages_are_strict(client, name):
    response = client.get(reverse(name))

    assert response.status_code == HTTPStatus.OK
    assert_strict(response)


def test_a_patients_pages_are_strict(client, tmp_path, patient):
    jane = patient_user("jane@example.com", "MRN-1001")
    study = make_study(tmp_path, patient, "jane")
    client.force_login(jane)

    for url in [
        reverse("home"),
        reverse("study", args=[study.study_instance_uid]),
        reverse("upload"),
        reverse("account_email"),
        reverse("account_change_password"),
        reverse("mfa_index"),
    ]:
        response = client.get(url)
        assert response.status_code == HTTPStatus.OK, url
        assert_strict(response)


def test_staff_and_admin_pages_are_strict(client):
    client.force_login(records_staff())
    assert_strict(client.get(reverse("unmatched-studies")))

    admin = User.objects.create_superuser("admin@example.com", "pw-123456789")
    TOTP.activate(admin, generate_totp_secret())
    client.force_login(admin)
    for url in [
        reverse("admin:index"),
        reverse("admin:sharing_study_changelist"),
        reverse("admin:sharing_user_add"),
    ]:
        response = client.get(url)
        assert response.status_code == HTTPStatus.OK, url
        assert_strict(response)


def test_a_staff_member_setting_up_two_factor_sees_a_strict_page(client):
    staff = User.objects.create_user("new@example.com", "pw-123456789", role=User.Role.RECORDS)
    client.force_login(staff)

    response = client.get(reverse("mfa_activate_totp"), follow=True)

    assert response.status_code == HTTPStatus.OK
    assert_strict(response)
