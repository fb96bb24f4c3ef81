"""URLs of the recommender's HTTP API (included under /api/ by the project)."""
from django.urls import path  # noqa: F401

urlpatterns: list = []
