"""The demo storefront and the Django project package (settings, urls, Celery app)."""

from shop.celery import app as celery_app

__all__ = ["celery_app"]
