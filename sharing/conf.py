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
        return int(self._get("SCP_PORT"))  # type: ignore[call-overload]

    @property
    def SCP_ALLOWED_AES(self) -> list[str]:
        return list(self._get("SCP_ALLOWED_AES"))  # type: ignore[call-overload]

    @property
    def SCP_MAX_PDU(self) -> int:
        return int(self._get("SCP_MAX_PDU"))  # type: ignore[call-overload]

    @property
    def SCP_MAX_ASSOCIATIONS(self) -> int:
        return int(self._get("SCP_MAX_ASSOCIATIONS"))  # type: ignore[call-overload]

    @property
    def SCP_TIMEOUT(self) -> float:
        return float(self._get("SCP_TIMEOUT"))  # type: ignore[arg-type]

    @property
    def SCP_PROCESSES(self) -> int:
        return int(self._get("SCP_PROCESSES"))  # type: ignore[call-overload]

    @property
    def THUMBNAIL_SIZE(self) -> int:
        return int(self._get("THUMBNAIL_SIZE"))  # type: ignore[call-overload]

    @property
    def MAX_IMAGE_PIXELS(self) -> int:
        return int(self._get("MAX_IMAGE_PIXELS"))  # type: ignore[call-overload]

    @property
    def STUDY_QUIET_SECONDS(self) -> int:
        return int(self._get("STUDY_QUIET_SECONDS"))  # type: ignore[call-overload]

    @property
    def UPLOAD_MAX_BYTES(self) -> int:
        return int(self._get("UPLOAD_MAX_BYTES"))  # type: ignore[call-overload]

    @property
    def SITE_URL(self) -> str:
        return str(self._get("SITE_URL"))


app_settings = AppSettings()
