"""The Celery app, configured from Django settings (``CELERY_*``)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.dev")

app = Celery("lightbox")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
