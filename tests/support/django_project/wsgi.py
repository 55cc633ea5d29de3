"""WSGI entry point (``gunicorn tests.support.django_project.wsgi``)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.support.django_project.settings")
application = get_wsgi_application()
