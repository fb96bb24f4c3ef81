"""WSGI config of the host project (as ``startproject`` writes it)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hostproject.settings")

application = get_wsgi_application()
