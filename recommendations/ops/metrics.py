"""Prometheus metrics at ``/metrics``, when ``RECOMMENDER["METRICS_ENABLED"]`` is true.

Counted in the web processes (prometheus-client):

- ``behavior_events_total{outcome}``: accepted, retried, rejected, lost (``behavior.metrics``);
- ``behavior_throttle_local_total``: requests throttled per process while Redis was down;
- ``behavior_partition_misses_total{table}``: rows stored in a DEFAULT partition (PostgreSQL);
- ``recommender_request_seconds{endpoint, method, source}``: latency of every request by URL
  name (``unmatched`` for none) and by who answered (``fastpath``: a replayed list,
  ``lane``: the fast path's real-time lane, ``django``: the full stack).

Read from the database and the broker at each scrape (true whichever process did the work,
a Celery worker in another container included):

- ``recommender_active_model_version`` (0: none);
- ``recommender_last_success_timestamp_seconds{job}``: training (a run that succeeded),
  refresh_lists (newest precomputed list), refresh_relations (newest item relation or
  popularity row), profile_rebuild (a completed profile run); absent until it first happened;
- ``recommender_queue_depth{queue}``: messages waiting in each Celery queue (Redis broker)
  and impressions waiting to be written.

Several gunicorn workers: set ``PROMETHEUS_MULTIPROC_DIR`` to an empty folder shared by
them (the Docker image's gunicorn config does, ``shop/gunicorn_conf.py``); each process then
writes its counts there and a scrape adds them up (prometheus-client's multiprocess mode).
``RECOMMENDER["METRICS_TOKEN"]``, when set, must come as ``Authorization: Bearer <token>``;
otherwise restrict ``/metrics`` to the scraper at the proxy.
"""

from __future__ import annotations

import logging
import os
import time
import weakref
from collections.abc import Callable, Iterator

from django.core.exceptions import MiddlewareNotUsed
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import Resolver404, resolve
from django.utils.crypto import constant_time_compare
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from recommendations.conf import recommender_settings

logger = logging.getLogger(__name__)

__all__ = ["MetricsMiddleware", "answered_by", "metrics_view"]

REQUEST_SECONDS = Histogram(
    "recommender_request_seconds",
    "Request latency by URL name, method and the layer that answered.",
    ["endpoint", "method", "source"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
# Who answered a request other than the full stack: "fastpath" (a replayed list) or "lane" (the
# fast path's real-time lane), told by :func:`answered_by`; kept with the request, weakly.
_answered: weakref.WeakKeyDictionary[HttpRequest, str] = weakref.WeakKeyDictionary()


class MetricsMiddleware:
    """Times every request (put it first in ``MIDDLEWARE``); not installed when metrics are off."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        if not recommender_settings.METRICS_ENABLED:
            raise MiddlewareNotUsed
        self.get_response = get_response
        self._names: dict[str, str] = {}

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        source = _answered.pop(request, "django")
        match = getattr(request, "resolver_match", None)
        if match is not None:
            endpoint = match.view_name
        elif source != "django":
            endpoint = self._view_name(request.path_info)  # the fast path answers before URL resolution
        else:
            endpoint = "unmatched"
        REQUEST_SECONDS.labels(endpoint, request.method or "", source).observe(time.perf_counter() - started)
        return response

    def _view_name(self, path: str) -> str:
        """The URL name the full stack would have resolved (kept: the fast path serves one URL)."""
        name = self._names.get(path)
        if name is None:
            try:
                name = resolve(path).view_name
            except Resolver404:
                name = "unmatched"
            if len(self._names) < 100:
                self._names[path] = name
        return name


class OperationsCollector(Collector):
    """Gauges read at scrape time from the database and the broker (see the module's doc)."""

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """The families' names, without reading anything (registration must not query the database)."""
        yield GaugeMetricFamily("recommender_active_model_version", "")
        yield GaugeMetricFamily("recommender_last_success_timestamp_seconds", "", labels=["job"])
        yield GaugeMetricFamily("recommender_queue_depth", "", labels=["queue"])

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for name, reader in (
            ("active model", _active_version),
            ("last successes", _last_successes),
            ("queue depths", _queue_depths),
        ):
            try:
                yield from reader()
            except Exception:  # a scrape during an outage still returns the process counters
                logger.warning("metrics: %s not available", name, exc_info=True)


def _active_version() -> Iterator[GaugeMetricFamily]:
    from recommendations.models import ModelVersion

    number = (
        ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE)
        .values_list("number", flat=True)
        .first()
    )
    yield GaugeMetricFamily(
        "recommender_active_model_version", "Number of the active model version (0: none).", value=number or 0
    )


def _last_successes() -> Iterator[GaugeMetricFamily]:
    from django.db.models import Max

    from recommendations.models import (
        ItemPopularity,
        ItemRelation,
        PrecomputedList,
        ProfileRun,
        TrainingRun,
    )

    family = GaugeMetricFamily(
        "recommender_last_success_timestamp_seconds",
        "Unix time of the last successful run of each background job.",
        labels=["job"],
    )
    relations = [
        ItemRelation.objects.aggregate(at=Max("computed_at"))["at"],
        ItemPopularity.objects.aggregate(at=Max("computed_at"))["at"],
    ]
    moments = {
        "training": TrainingRun.objects.filter(status=TrainingRun.Status.SUCCEEDED).aggregate(
            at=Max("finished_at")
        )["at"],
        "refresh_lists": PrecomputedList.objects.aggregate(at=Max("computed_at"))["at"],
        "refresh_relations": max((at for at in relations if at is not None), default=None),
        "profile_rebuild": ProfileRun.objects.filter(status=ProfileRun.Status.COMPLETED).aggregate(
            at=Max("finished_at")
        )["at"],
    }
    for job, moment in moments.items():
        if moment is not None:
            family.add_metric([job], moment.timestamp())
    yield family


def _queue_depths() -> Iterator[GaugeMetricFamily]:
    from recommendations.runtime.enqueue import celery_app
    from recommendations.services.serving import impressions

    family = GaugeMetricFamily(
        "recommender_queue_depth", "Messages waiting per Celery queue; impressions waiting.", labels=["queue"]
    )
    family.add_metric(["impressions"], impressions.pending())
    app = celery_app()
    conf = app.conf
    if not conf.task_always_eager and str(conf.broker_url or "").startswith(("redis://", "rediss://")):
        queues = {conf.task_default_queue, recommender_settings.TRAIN_QUEUE}
        with app.connection_for_read() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
            channel = connection.default_channel
            for queue in sorted(queues):
                family.add_metric([queue], channel._size(queue))
    yield family


_collector = OperationsCollector()
REGISTRY.register(_collector)


def _registry() -> CollectorRegistry:
    """The default registry, or one adding up every process's files in multiprocess mode."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    registry.register(_collector)
    return registry


def metrics_view(request: HttpRequest) -> HttpResponse:
    """The Prometheus text exposition (404 while ``METRICS_ENABLED`` is off)."""
    if not recommender_settings.METRICS_ENABLED:
        raise Http404("Metrics are off (RECOMMENDER['METRICS_ENABLED']).")
    token = recommender_settings.METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "")
        if not constant_time_compare(given, f"Bearer {token}"):
            response = HttpResponse("A bearer token is required.", status=401, content_type="text/plain")
            response["WWW-Authenticate"] = "Bearer"
            return response
    response = HttpResponse(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response


def answered_by(request: HttpRequest, source: str) -> None:
    """Record which layer answered ``request`` (the fast path calls it): its ``source`` label."""
    if recommender_settings.METRICS_ENABLED:
        _answered[request] = source
