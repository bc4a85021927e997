"""Local development and the embedded demo: safe defaults, nothing to configure."""

from portal.settings.base import *  # noqa: F403
from portal.settings.base import SECRET_KEY as _SECRET_KEY

DEBUG = True
SECRET_KEY = _SECRET_KEY or "dev-only-insecure-key-do-not-use-in-production"
