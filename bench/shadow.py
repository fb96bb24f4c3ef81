"""Shadow scoring's cost on the web tier: CPU per list request with and without a shadow sample.

One run: (re)creates a Postgres database, seeds a small demo shop, trains a small network,
refreshes popularity, relations and the precomputed lists, and logs shoppers in. Then, in this
process through Django's test client (the whole middleware stack, fast path off so every request
builds its list through ``serve_list``), it requests ``/api/recommendations/?placement=home``
in alternating blocks: without a shadow run, then with an active run of the same version at
``--share`` (0.1: one list in ten is sampled for scoring). The cache and the Celery broker are a
real Redis, so each sampled request pays for pushing its job on the shadow queue after its
response (and, once per batch, for publishing the drain task); no worker consumes during the
blocks. CPU per request is ``time.process_time`` over a block divided by its requests; the figure
is the median over the blocks of each kind, their ratio and the median of the paired blocks'
ratios. The CPU of one push and of one Celery publish are also measured alone, and the worker's
own CPU per scored request (the candidate scoring, run here on the queued jobs).

The goal: shadow scoring adds no more than 5 % to the web tier's CPU per request at a 10 % sample.
Usage::

    nice -n 10 .venv/bin/python bench/shadow.py [--database bench_shadow] [--redis-db 8] [--broker-db 9]
        [--share 0.1] [--requests 500] [--rounds 12]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.serve import PG, _client, _recreate_database, _sessions, _train  # noqa: E402


def _configure(args: argparse.Namespace, media: str) -> None:
    os.environ.update(
        {
            "DATABASE_URL": f"{PG}/{args.database}",
            "CACHE_URL": f"redis://127.0.0.1:6379/{args.redis_db}",
            "CACHE_KEY_PREFIX": "bench-shadow",
            "CELERY_BROKER_URL": f"redis://127.0.0.1:6379/{args.broker_db}",
            "DEBUG": "0",
            "SECRET_KEY": "bench-" + secrets.token_urlsafe(48),
            "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
            "MEDIA_ROOT": media,
            "DJANGO_SETTINGS_MODULE": "shop.settings",
            "RECOMMENDER_FAST_PATH": "0",
        }
    )


def _block(clients: list, requests: int, offset: int) -> float:
    """CPU ms per request over one block (the test client runs the request_finished receivers)."""
    started = time.process_time()
    for i in range(requests):
        response = clients[(offset + i) % len(clients)].get("/api/recommendations/?placement=home&limit=10")
        assert response.status_code == 200, response.status_code
    return (time.process_time() - started) * 1000 / requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="bench_shadow", help="Postgres database name (recreated)")
    parser.add_argument("--redis-db", type=int, default=8, help="Redis database of the cache")
    parser.add_argument("--broker-db", type=int, default=9, help="Redis database of the Celery broker")
    parser.add_argument("--share", type=float, default=0.1, help="the shadow run's sample share")
    parser.add_argument("--requests", type=int, default=500, help="requests per block")
    parser.add_argument("--rounds", type=int, default=12, help="blocks of each kind (alternating)")
    parser.add_argument("--users", type=int, default=400)
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--products", type=int, default=2_000)
    args = parser.parse_args()
    workdir = Path(tempfile.gettempdir()) / f"bench-shadow-{args.database}"
    workdir.mkdir(exist_ok=True)
    _recreate_database(args.database)
    _configure(args, str(workdir / "media"))

    import django

    django.setup()
    import redis
    from django.core.cache import cache
    from django.core.management import call_command

    from recommendations.models import PrecomputedList, ShadowRun
    from recommendations.services.serving.impressions import redis_client
    from recommendations.services.serving.popularity import refresh_popularity
    from recommendations.services.serving.precompute import refresh_recommendations
    from recommendations.services.serving.relations import refresh_item_relations
    from recommendations.services.shadow import sampling
    from recommendations.services.shadow.scoring import score_queued
    from shop.demo.generator import SeedOptions, seed_demo

    call_command("migrate", verbosity=0)
    cache.clear()
    broker = redis.Redis.from_url(os.environ["CELERY_BROKER_URL"])
    broker.flushdb()
    seed_demo(SeedOptions(users=args.users, events=args.events, products=args.products, days=30))
    loaded = _train(quick=True)
    refresh_popularity()
    refresh_item_relations()
    refresh_recommendations()
    user_ids = list(PrecomputedList.objects.order_by("user_id").values_list("user_id", flat=True))[:100]
    cookies = workdir / "cookies.txt"
    _sessions(user_ids, cookies)
    clients = [_client(line) for line in cookies.read_text().splitlines()]
    run = ShadowRun.objects.create(
        model_version_id=loaded.version_id,  # type: ignore[attr-defined]  # _train returns the LoadedModel
        placement="home",
        sample_share=args.share,
        is_active=False,
    )

    def shadow(active: bool) -> None:
        ShadowRun.objects.filter(pk=run.pk).update(is_active=active)
        sampling.forget_runs()

    # warm-up: sessions, per-process caches, compiled queries, the broker connection
    shadow(True)
    for client in clients:
        client.get("/api/recommendations/?placement=home&limit=10")
    broker.delete("celery")
    queue, queue_key = redis_client(), sampling._queue_key()
    queue.delete(queue_key)
    without: list[float] = []
    with_shadow: list[float] = []
    enqueued = 0
    for round_ in range(args.rounds):
        # each kind first in every other round: a drift of the machine's speed falls on both
        for active in (False, True) if round_ % 2 == 0 else (True, False):
            shadow(active)
            before = queue.llen(queue_key)
            cost = _block(clients, args.requests, round_)
            (with_shadow if active else without).append(cost)
            enqueued += queue.llen(queue_key) - before
    base, sampled = statistics.median(without), statistics.median(with_shadow)
    paired = statistics.median(b / a for a, b in zip(without, with_shadow, strict=True))
    print(
        f"{len(user_ids)} logged-in shoppers, {args.rounds} x {args.requests} requests per kind, "
        "fast path off\n"
    )
    print("| requests | CPU ms per request (median of blocks) | blocks |")
    print("|---|---|---|")
    print(f"| without a shadow run | {base:.3f} | {', '.join(f'{v:.3f}' for v in without)} |")
    print(
        f"| shadow run at {args.share:.0%} | {sampled:.3f} | {', '.join(f'{v:.3f}' for v in with_shadow)} |"
    )
    total = args.rounds * args.requests
    print(
        f"\nshadow / without: {sampled / base:.3f} ({(sampled / base - 1):+.1%}; median of the paired "
        f"blocks' ratios {paired:.3f}; goal: at most +5 %); "
        f"{enqueued} of {total} requests sampled for scoring ({enqueued / total:.1%})"
    )
    # what a sampled request adds, measured alone: the push (shipped), a Celery publish (not)
    from recommendations.runtime.enqueue import enqueue
    from recommendations.tasks import score_shadow

    repeats = 500
    job = json.dumps([run.pk, str(uuid.uuid4()), user_ids[0], "", [f"k{i}" for i in range(10)], 10])
    started = time.process_time()
    for _ in range(repeats):
        queue.rpush(queue_key + ":alone", job)
    push_ms = (time.process_time() - started) * 1000 / repeats
    queue.delete(queue_key + ":alone")
    started = time.process_time()
    for _ in range(repeats):
        enqueue(score_shadow, run.pk, str(uuid.uuid4()), user_ids[0], "", [], 10)
    publish_ms = (time.process_time() - started) * 1000 / repeats
    for name, ms in (
        ("push of a job on the shadow queue", push_ms),
        ("Celery publish of a task", publish_ms),
    ):
        print(
            f"CPU per {name}: {ms:.3f} ms; at a {args.share:.0%} sample {args.share * ms:.4f} ms per request "
            f"({args.share * ms / base:+.2%} of {base:.3f} ms)"
        )
    # the worker's side: score queued jobs here
    shadow(True)
    started = time.process_time()
    counts = score_queued(200)
    seconds = time.process_time() - started
    jobs = sum(counts.values())
    print(f"worker CPU per scored job: {seconds * 1000 / max(1, jobs):.2f} ms ({counts})")
    broker.flushdb()


if __name__ == "__main__":
    main()
