"""The Celery app, configured from Django settings (``CELERY_*``)."""

import os

from celery import Celery

# Entry points a deployment runs default to production; only manage.py defaults to development.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.prod")

app = Celery("lightbox")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
