"""URLs of the events API (included by the project under ``/api/``)."""

from django.urls import path

from behavior.api.views import EventIngestView

app_name = "behavior-api"

urlpatterns = [
    path("events/", EventIngestView.as_view(), name="events"),
]
