"""Lightbox's own settings, read from Django settings with the ``LIGHTBOX_`` prefix.

Defaults live in portal/settings/base.py, where each is read from the environment; this class is
the one place the rest of the code asks, so tests can override any of them with
``settings.LIGHTBOX_…``.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings


class AppSettings:
    prefix = "LIGHTBOX_"

    def _get(self, name: str) -> object:
        return getattr(settings, self.prefix + name)

    def _int(self, name: str) -> int:
        return int(str(self._get(name)))

    def _list(self, name: str) -> list[object]:
        value = self._get(name)
        return list(value) if isinstance(value, list | tuple) else []

    @property
    def OBJECT_STORE(self) -> str:
        return str(self._get("OBJECT_STORE"))

    @property
    def TEMP_DIR(self) -> Path:
        path = Path(str(self._get("TEMP_DIR")))
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def SCP_AE_TITLE(self) -> str:
        return str(self._get("SCP_AE_TITLE"))

    @property
    def SCP_HOST(self) -> str:
        return str(self._get("SCP_HOST"))

    @property
    def SCP_PORT(self) -> int:
        return self._int("SCP_PORT")

    @property
    def SCP_ALLOWED_AES(self) -> list[str]:
        return [str(entry) for entry in self._list("SCP_ALLOWED_AES")]

    @property
    def SCP_MAX_PDU(self) -> int:
        return self._int("SCP_MAX_PDU")

    @property
    def SCP_MAX_ASSOCIATIONS(self) -> int:
        return self._int("SCP_MAX_ASSOCIATIONS")

    @property
    def SCP_MAX_ASSOCIATIONS_PER_ADDRESS(self) -> int:
        return self._int("SCP_MAX_ASSOCIATIONS_PER_ADDRESS")

    @property
    def SCP_NEGOTIATION_TIMEOUT(self) -> float:
        return float(str(self._get("SCP_NEGOTIATION_TIMEOUT")))

    @property
    def SCP_TIMEOUT(self) -> float:
        return float(str(self._get("SCP_TIMEOUT")))

    @property
    def SCP_PROCESSES(self) -> int:
        return self._int("SCP_PROCESSES")

    @property
    def PACS_TIMEOUT(self) -> float:
        return float(str(self._get("PACS_TIMEOUT")))

    @property
    def THUMBNAIL_SIZE(self) -> int:
        return self._int("THUMBNAIL_SIZE")

    @property
    def INDEX_COALESCE_SECONDS(self) -> float:
        return float(str(self._get("INDEX_COALESCE_SECONDS")))

    @property
    def THUMBNAIL_SETTLE_SECONDS(self) -> float:
        return float(str(self._get("THUMBNAIL_SETTLE_SECONDS")))

    @property
    def MAX_IMAGE_PIXELS(self) -> int:
        return self._int("MAX_IMAGE_PIXELS")

    @property
    def STUDY_QUIET_SECONDS(self) -> int:
        return self._int("STUDY_QUIET_SECONDS")

    @property
    def UPLOAD_MAX_BYTES(self) -> int:
        return self._int("UPLOAD_MAX_BYTES")

    @property
    def SITE_URL(self) -> str:
        return str(self._get("SITE_URL"))

    @property
    def SHARE_MAX_FAILURES(self) -> int:
        return self._int("SHARE_MAX_FAILURES")

    @property
    def SHARE_FAILURES_PER_MINUTE(self) -> int:
        return self._int("SHARE_FAILURES_PER_MINUTE")

    @property
    def SHARE_FAILURES_PER_CLIENT(self) -> int:
        return self._int("SHARE_FAILURES_PER_CLIENT")

    @property
    def RELEASE_DUE_DAYS(self) -> int:
        return self._int("RELEASE_DUE_DAYS")

    @property
    def RELEASE_EXTENSION_DAYS(self) -> int:
        return self._int("RELEASE_EXTENSION_DAYS")

    @property
    def SESSION_IDLE_SECONDS(self) -> int:
        return self._int("SESSION_IDLE_SECONDS")

    @property
    def SESSION_ABSOLUTE_SECONDS(self) -> int:
        return self._int("SESSION_ABSOLUTE_SECONDS")


app_settings = AppSettings()
