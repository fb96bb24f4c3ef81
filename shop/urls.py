"""URLs of the demo project: the shop pages, the plugin APIs, the admin and the API docs."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from recommendations.ops.health import ReadinessView
from recommendations.ops.metrics import metrics_view
from shop import views

urlpatterns = [
    # liveness (touches nothing), readiness (database, cache, broker, the active model), metrics
    path("healthz", views.healthz, name="healthz"),
    path("readyz", ReadinessView.as_view(), name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    # set_language: the language switch in the shop's header posts here.
    path("i18n/", include("django.conf.urls.i18n")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/", include("behavior.api.urls")),
    path("api/", include("recommendations.api.urls")),
    path("", include("shop.shop_urls")),
]
