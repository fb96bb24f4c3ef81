# readme: begin project-init
# The Celery app is loaded with Django, so that shared tasks (the plugin's) use it.
from .celery import app as celery_app

__all__ = ("celery_app",)
# readme: end project-init
