"""Settings shared by every environment. Values come from the environment (see portal/env.py).

With nothing set, Lightbox runs on its embedded defaults: SQLite, a local-disk object store under
``var/`` and Celery tasks executed inline. ``DATABASE_URL``, ``REDIS_URL`` and
``LIGHTBOX_OBJECT_STORE`` switch to PostgreSQL, Redis-backed workers and S3-compatible storage.
"""

from __future__ import annotations

from pathlib import Path

import dj_database_url
import django_stubs_ext

from portal.env import env_bool, env_float, env_int, env_list, env_secret, env_str

# Lets admin and querysets be subscripted at run time (ModelAdmin[Study]) for mypy.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(env_str("LIGHTBOX_VAR_DIR", str(BASE_DIR / "var"))).resolve()

SECRET_KEY = env_secret("DJANGO_SECRET_KEY") or ""
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")
SITE_ID = 1

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.sites",
    "django.contrib.staticfiles",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "sharing",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "sharing.security.ContentSecurityPolicyMiddleware",
    "sharing.security.PrivateResponsesMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "sharing.auth.tokens.ApiTokenMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "sharing.middleware.SessionTimeoutMiddleware",
    "sharing.middleware.StaffMFAMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    # Workers and web processes keep a connection for this long rather than one per task or
    # request; a dead one is noticed before use. The SCP closes its own per association.
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL,
            conn_max_age=env_int("LIGHTBOX_DB_CONN_MAX_AGE", 60, minimum=0),
            conn_health_checks=True,
        )
    }
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(VAR_DIR / "lightbox.sqlite3"),
            "OPTIONS": {
                # WAL lets the web server read while the SCP writes; IMMEDIATE avoids the
                # "database is locked" upgrade deadlock between concurrent writers.
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "sharing.User"

# --- Cache and Celery ------------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "portal.redis_cache.RedisCache", "LOCATION": REDIS_URL}}
    # Sessions are read from Redis and written through to the database: one query less per
    # request (each frame the viewer fetches is a request), and nothing lost if Redis restarts.
    SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
else:
    # One process's memory: the embedded demo runs a single web process (portal/gunicorn_conf.py),
    # so its rate limits and lockouts are still counted in one place. Production requires Redis.
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# How long a signed-in user's row is kept in the cache between requests (sharing.auth_backends).
# Only a cache that every process shares may keep it: a change made in one process must be seen
# by all of them at their next request.
LIGHTBOX_USER_CACHE_SECONDS = env_int("LIGHTBOX_USER_CACHE_SECONDS", 300 if REDIS_URL else 0, minimum=0)

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TASK_TIME_LIMIT = env_int("LIGHTBOX_TASK_TIME_LIMIT", 600, minimum=10)
CELERY_TASK_SOFT_TIME_LIMIT = CELERY_TASK_TIME_LIMIT - 5
CELERY_WORKER_PREFETCH_MULTIPLIER = 4
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A task whose worker died unacknowledged is delivered again after this many seconds. kombu
# looks for such tasks every unacked_restore_interval x unacked_restore_throttle seconds, so
# both follow the timeout: a short timeout is only useful with a sweep at least as frequent.
# The default outlasts the task time limit, so a slow task is never delivered twice at once.
_VISIBILITY_TIMEOUT = env_int("LIGHTBOX_TASK_VISIBILITY_TIMEOUT", CELERY_TASK_TIME_LIMIT + 300, minimum=1)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": _VISIBILITY_TIMEOUT,
    "unacked_restore_interval": max(1, min(10, _VISIBILITY_TIMEOUT // 2)),
    "unacked_restore_throttle": 1 if _VISIBILITY_TIMEOUT < 600 else 10,
}
CELERY_BEAT_SCHEDULE = {
    "studies-mark-complete": {"task": "sharing.tasks.studies_mark_complete", "schedule": 15.0},
    "index-stragglers": {"task": "sharing.tasks.index_stragglers", "schedule": 60.0},
    "shares-expire": {"task": "sharing.tasks.shares_expire", "schedule": 60.0},
    "retrievals-stalled": {"task": "sharing.tasks.retrievals_stalled", "schedule": 600.0},
}

# --- Accounts (django-allauth) ---------------------------------------------------------------
# Django's and allauth's backends, reading the signed-in user from the cache (sharing.auth_backends).
AUTHENTICATION_BACKENDS = [
    "sharing.auth_backends.ModelBackend",
    "sharing.auth_backends.AuthenticationBackend",
]
ACCOUNT_ADAPTER = "sharing.adapters.AccountAdapter"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_DEFAULT_HTTP_PROTOCOL = env_str("LIGHTBOX_HTTP_PROTOCOL", "http")
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
LOGIN_REDIRECT_URL = "/"
LOGIN_URL = "/accounts/login/"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

EMAIL_BACKEND = env_str("DJANGO_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("DJANGO_EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("DJANGO_EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("DJANGO_EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_secret("DJANGO_EMAIL_HOST_PASSWORD") or ""
EMAIL_USE_TLS = env_bool("DJANGO_EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DJANGO_DEFAULT_FROM_EMAIL", "Lightbox <no-reply@localhost>")

# --- Internationalisation, static files ------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("LIGHTBOX_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("LIGHTBOX_STATIC_ROOT", str(VAR_DIR / "staticfiles")))

# Uploaded files larger than this go to a temporary file rather than memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
FILE_UPLOAD_TEMP_DIR = None

# --- Security headers common to every environment --------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"

# Signed-in sessions end after this long without a request, and this long after sign-in
# whatever happens (sharing.middleware.SessionTimeoutMiddleware). The cookie lives no longer
# than the absolute limit; last activity is written at most once a minute, not on every request.
LIGHTBOX_SESSION_IDLE_SECONDS = env_int("LIGHTBOX_SESSION_IDLE_SECONDS", 1800, minimum=60)
LIGHTBOX_SESSION_ABSOLUTE_SECONDS = env_int("LIGHTBOX_SESSION_ABSOLUTE_SECONDS", 43200, minimum=60)
SESSION_COOKIE_AGE = LIGHTBOX_SESSION_ABSOLUTE_SECONDS
SESSION_SAVE_EVERY_REQUEST = False

# --- Lightbox --------------------------------------------------------------------------------
# Object store: file:///abs/path (default under var/) or s3://bucket[/prefix] with boto3's
# standard AWS_* variables for the endpoint and credentials.
LIGHTBOX_OBJECT_STORE = env_str("LIGHTBOX_OBJECT_STORE", (VAR_DIR / "objects").as_uri())
LIGHTBOX_TEMP_DIR = env_str("LIGHTBOX_TEMP_DIR", str(VAR_DIR / "tmp"))

LIGHTBOX_SCP_AE_TITLE = env_str("LIGHTBOX_SCP_AE_TITLE", "LIGHTBOX")
LIGHTBOX_SCP_HOST = env_str("LIGHTBOX_SCP_HOST", "0.0.0.0")  # noqa: S104 - PACS connect from other hosts
LIGHTBOX_SCP_PORT = env_int("LIGHTBOX_SCP_PORT", 11112, minimum=1)
# "AE" or "AE@host"; empty means any calling AE may store (and each is logged).
LIGHTBOX_SCP_ALLOWED_AES = env_list("LIGHTBOX_SCP_ALLOWED_AES")
# The largest PDU a peer may send once associated (0: unlimited); a longer one is aborted unread.
LIGHTBOX_SCP_MAX_PDU = env_int("LIGHTBOX_SCP_MAX_PDU", 262144, minimum=0)
# Associations at once (per SCP process), and connections at once from any one address; a
# connection that has not sent its association request within the negotiation timeout is dropped
# and never takes an association's place. LIGHTBOX_SCP_TIMEOUT: an established association's idle
# limit, and the time each PDU has to arrive whole.
LIGHTBOX_SCP_MAX_ASSOCIATIONS = env_int("LIGHTBOX_SCP_MAX_ASSOCIATIONS", 16, minimum=1)
LIGHTBOX_SCP_MAX_ASSOCIATIONS_PER_ADDRESS = env_int("LIGHTBOX_SCP_MAX_ASSOCIATIONS_PER_ADDRESS", 8, minimum=1)
LIGHTBOX_SCP_NEGOTIATION_TIMEOUT = env_float("LIGHTBOX_SCP_NEGOTIATION_TIMEOUT", 5.0, minimum=1.0)
LIGHTBOX_SCP_TIMEOUT = env_float("LIGHTBOX_SCP_TIMEOUT", 60.0, minimum=1.0)
LIGHTBOX_SCP_PROCESSES = env_int("LIGHTBOX_SCP_PROCESSES", 1, minimum=1)
# Query/retrieve from PACS nodes (sharing.dicom.qr): connect, ACSE, DIMSE and network timeouts.
LIGHTBOX_PACS_TIMEOUT = env_float("LIGHTBOX_PACS_TIMEOUT", 30.0, minimum=1.0)

LIGHTBOX_THUMBNAIL_SIZE = env_int("LIGHTBOX_THUMBNAIL_SIZE", 256, minimum=32)
# Indexing of a study runs this long after its first new instance, taking all that came since.
LIGHTBOX_INDEX_COALESCE_SECONDS = env_float("LIGHTBOX_INDEX_COALESCE_SECONDS", 0.5, minimum=0.0)
# A series is re-thumbnailed once nothing has arrived for it for this long (see thumbnails.py).
LIGHTBOX_THUMBNAIL_SETTLE_SECONDS = env_float("LIGHTBOX_THUMBNAIL_SETTLE_SECONDS", 1.0, minimum=0.0)
# Images that declare more pixels than this (rows x columns x frames) are not decoded.
LIGHTBOX_MAX_IMAGE_PIXELS = env_int("LIGHTBOX_MAX_IMAGE_PIXELS", 200_000_000, minimum=1)
LIGHTBOX_STUDY_QUIET_SECONDS = env_int("LIGHTBOX_STUDY_QUIET_SECONDS", 60, minimum=0)
LIGHTBOX_UPLOAD_MAX_BYTES = env_int("LIGHTBOX_UPLOAD_MAX_BYTES", 4 * 1024**3, minimum=1)
LIGHTBOX_SITE_URL = env_str("LIGHTBOX_SITE_URL", "http://localhost:8000")
# Share links: wrong answers before a share locks, and the throttles in front of that lock.
LIGHTBOX_SHARE_MAX_FAILURES = env_int("LIGHTBOX_SHARE_MAX_FAILURES", 5, minimum=1)
LIGHTBOX_SHARE_FAILURES_PER_MINUTE = env_int("LIGHTBOX_SHARE_FAILURES_PER_MINUTE", 5, minimum=1)
LIGHTBOX_SHARE_FAILURES_PER_CLIENT = env_int("LIGHTBOX_SHARE_FAILURES_PER_CLIENT", 20, minimum=1)
# Release requests: the legal clock from receipt, and the one extension staff may add with a reason.
LIGHTBOX_RELEASE_DUE_DAYS = env_int("LIGHTBOX_RELEASE_DUE_DAYS", 30, minimum=1)
LIGHTBOX_RELEASE_EXTENSION_DAYS = env_int("LIGHTBOX_RELEASE_EXTENSION_DAYS", 30, minimum=1)

LOG_LEVEL = env_str("LIGHTBOX_LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # Share links carry a credential in their path: no handler may print one.
    "filters": {"redact_share_tokens": {"()": "sharing.logging.RedactShareTokens"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact_share_tokens"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "pynetdicom": {"level": "WARNING"},
        "botocore": {"level": "WARNING"},
        # One line per task is noise at this volume; failures are still logged.
        "celery.app.trace": {"level": "WARNING"},
        "kombu": {"level": "ERROR"},
        "django.db.backends": {"level": "INFO"},
    },
}
