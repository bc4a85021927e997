import os

from django.core.asgi import get_asgi_application

# Entry points a deployment runs default to production; only manage.py defaults to development.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.prod")
application = get_asgi_application()
