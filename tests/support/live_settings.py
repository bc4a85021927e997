"""Settings of a web server that a test starts in other processes (tests/support/live.py).

The real defaults of portal/settings/base.py, so the server is what a deployment runs: with
REDIS_URL, the cache and sessions every process shares; without it, the embedded demo's memory of
one process. Only the test suite's conveniences are added: fast password hashing (the accounts are
made by the test) and no collected static files.
"""

from portal.settings.base import *  # noqa: F403
from portal.settings.base import MIDDLEWARE

SECRET_KEY = "test-only-secret-key"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CELERY_TASK_ALWAYS_EAGER = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
MIDDLEWARE = [m for m in MIDDLEWARE if m != "whitenoise.middleware.WhiteNoiseMiddleware"]
