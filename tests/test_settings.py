"""Settings from the environment: safe defaults, bad values refused, production strict."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.sites.models import Site
from django.core.exceptions import ImproperlyConfigured

from portal.env import env_bool, env_int, env_list, env_secret

ROOT = Path(__file__).resolve().parents[1]


def test_booleans_and_integers_are_parsed_strictly(monkeypatch):
    monkeypatch.setenv("X_FLAG", "yes")
    monkeypatch.setenv("X_NUMBER", "42")
    assert env_bool("X_FLAG") is True
    assert env_int("X_NUMBER", 1) == 42

    monkeypatch.setenv("X_FLAG", "maybe")
    monkeypatch.setenv("X_NUMBER", "forty-two")
    with pytest.raises(ImproperlyConfigured, match="X_FLAG"):
        env_bool("X_FLAG")
    with pytest.raises(ImproperlyConfigured, match="X_NUMBER"):
        env_int("X_NUMBER", 1)


def test_a_number_below_its_minimum_is_refused(monkeypatch):
    monkeypatch.setenv("X_PORT", "0")

    with pytest.raises(ImproperlyConfigured, match="at least 1"):
        env_int("X_PORT", 11112, minimum=1)


def test_lists_split_on_commas(monkeypatch):
    monkeypatch.setenv("X_AES", "PACS, MODALITY@10.0.0.2,,")

    assert env_list("X_AES") == ["PACS", "MODALITY@10.0.0.2"]


def test_secrets_may_come_from_a_file(monkeypatch, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s3cr3t\n")
    monkeypatch.setenv("X_SECRET_FILE", str(secret))

    assert env_secret("X_SECRET") == "s3cr3t"


def run_settings(module: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DATABASE_URL", "REDIS_URL", "LIGHTBOX_"))
    }
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": module, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_refuses_to_start_without_a_secret_key():
    result = run_settings("portal.settings.prod", DATABASE_URL="postgres://x@localhost/x")

    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_production_refuses_debug():
    result = run_settings(
        "portal.settings.prod",
        DATABASE_URL="postgres://x@localhost/x",
        DJANGO_SECRET_KEY="k" * 50,
        DJANGO_DEBUG="1",
    )

    assert result.returncode != 0
    assert "DJANGO_DEBUG" in result.stderr


def test_production_refuses_to_start_without_a_shared_cache():
    result = run_settings(
        "portal.settings.prod", DATABASE_URL="postgres://x@localhost/x", DJANGO_SECRET_KEY="k" * 50
    )

    assert result.returncode != 0
    assert "REDIS_URL" in result.stderr


def test_production_starts_with_its_secrets():
    result = run_settings(
        "portal.settings.prod",
        DATABASE_URL="postgres://x@localhost/x",
        DJANGO_SECRET_KEY="k" * 50,
        REDIS_URL="redis://localhost:6379/0",
    )

    assert result.returncode == 0, result.stderr


def test_the_embedded_default_needs_nothing(tmp_path):
    result = run_settings("portal.settings.dev", LIGHTBOX_VAR_DIR=str(tmp_path))

    assert result.returncode == 0, result.stderr


@pytest.mark.django_db
def test_the_site_is_named_lightbox():
    assert Site.objects.get_current().name == "Lightbox"


@pytest.mark.parametrize("entry_point", ["portal.wsgi", "portal.asgi", "portal.celery"])
def test_the_entry_points_a_deployment_runs_default_to_production(entry_point):
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DATABASE_URL", "REDIS_URL", "LIGHTBOX_"))
    }
    result = subprocess.run(
        [sys.executable, "-c", f"import {entry_point}; import django.conf; django.conf.settings.DEBUG"],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )

    # Production settings refuse to start without their secrets; development would have started.
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr
