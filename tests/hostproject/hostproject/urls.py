"""URLs of the host project: ``startproject``'s admin, then the plugin's APIs."""

from django.contrib import admin
from django.urls import path

urlpatterns = [
    path("admin/", admin.site.urls),
]

# readme: begin urls
from django.urls import include

urlpatterns += [
    path("api/", include("behavior.api.urls")),  # POST /api/events/
    path("api/", include("recommendations.api.urls")),  # lists, similar items, profiles
]
# readme: end urls
