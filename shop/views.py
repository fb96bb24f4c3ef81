"""Views of the demo shop."""
from django.http import HttpRequest, JsonResponse


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness probe: a tiny JSON answer that touches neither the database nor the cache."""
    return JsonResponse({"status": "ok"})
