import os

from django.core.wsgi import get_wsgi_application

# Entry points a deployment runs default to production; only manage.py defaults to development.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.prod")
application = get_wsgi_application()
