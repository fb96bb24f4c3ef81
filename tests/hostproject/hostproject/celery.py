"""The host's Celery app: ``celery -A hostproject worker`` / ``celery -A hostproject beat``."""

# readme: begin celery-app
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hostproject.settings")

app = Celery("hostproject")
# Every Celery option is a Django setting with the CELERY_ prefix.
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# readme: end celery-app
