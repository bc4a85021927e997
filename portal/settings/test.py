"""Settings for the test suite: fast hashing, mail in memory, tasks inline unless a test says so."""

from portal.settings.base import *  # noqa: F403

SECRET_KEY = "test-only-secret-key"  # noqa: S105 - the test suite only
DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CELERY_TASK_ALWAYS_EAGER = True
CELERY_BROKER_URL = "memory://"
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# The test client runs in this one process, which sees its own cache's invalidations.
LIGHTBOX_USER_CACHE_SECONDS = 300
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Tests never run collectstatic; without this WhiteNoise warns that STATIC_ROOT is missing.
MIDDLEWARE = [m for m in MIDDLEWARE if m != "whitenoise.middleware.WhiteNoiseMiddleware"]  # noqa: F405
