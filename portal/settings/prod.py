"""Production: refuses to start without its secrets, with DEBUG on, or on the embedded defaults."""

from django.core.exceptions import ImproperlyConfigured

from portal.env import env_bool, env_int
from portal.settings.base import *  # noqa: F403
from portal.settings.base import DATABASE_URL, DEBUG, REDIS_URL, SECRET_KEY

if DEBUG:
    raise ImproperlyConfigured("DJANGO_DEBUG must be off in production")
if not SECRET_KEY or len(SECRET_KEY) < 32:
    raise ImproperlyConfigured("DJANGO_SECRET_KEY (or DJANGO_SECRET_KEY_FILE) must be set to 32+ characters")
if not DATABASE_URL:
    raise ImproperlyConfigured("DATABASE_URL must point at PostgreSQL in production")
if not REDIS_URL:
    # Every web process must see the same signed-in users, rate limits and lockouts: without a
    # shared cache each process would count failed passwords and remember accounts on its own.
    raise ImproperlyConfigured("REDIS_URL must point at Redis in production (the cache all processes share)")

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
# Behind a TLS-terminating proxy (the normal case) every HTTPS setting is on. LIGHTBOX_HTTPS=false
# is for a local trial of the production image over plain http://localhost only.
HTTPS = env_bool("LIGHTBOX_HTTPS", True)
SECURE_SSL_REDIRECT = HTTPS and env_bool("LIGHTBOX_SSL_REDIRECT", True)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if HTTPS else None
SECURE_HSTS_SECONDS = env_int("LIGHTBOX_HSTS_SECONDS", 31536000, minimum=0) if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
CSRF_COOKIE_HTTPONLY = True
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "https" if HTTPS else "http"
