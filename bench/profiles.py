"""Benchmark of user profiles on a generated shop (figures printed).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_profiles .venv/bin/python bench/profiles.py \
        [--users 100000] [--events 1500000] [--skip-seed]

Seeds the shop with the demo generator (``seed_demo``), rebuilds every profile and reports:
rebuild seconds and peak memory (targets: < 60 s, < 2 GB), adjusted Rand index between
segments and the planted shopper types (>= 0.8), share of planted bots flagged as outliers
(>= 90%) and false-flag rate (< 2%), and the admin profile list's server time and query count
(< 300 ms, fixed).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")


def _peak_rss_sampler(stop: threading.Event, peak: list[int]) -> None:
    import psutil

    process = psutil.Process()
    while not stop.is_set():
        peak[0] = max(peak[0], process.memory_info().rss)
        time.sleep(0.05)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_500_000)
    parser.add_argument("--skip-seed", action="store_true", help="reuse the data already in the database")
    args = parser.parse_args()

    import django

    django.setup()
    from django.core.management import call_command, get_commands
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from sklearn.metrics import adjusted_rand_score

    from recommendations.models import UserProfile
    from recommendations.profiles import rebuild_profiles

    call_command("migrate", verbosity=0)
    if not args.skip_seed:
        if "seed_demo" not in get_commands():
            print(
                "seed_demo is not available yet (shop engineer): cannot generate the bench shop",
                file=sys.stderr,
            )
            return 2
        started = time.monotonic()
        call_command("seed_demo", users=args.users, events=args.events)
        print(f"seed: {args.users} users, {args.events} events in {time.monotonic() - started:.1f} s")

    stop, peak = threading.Event(), [0]
    sampler = threading.Thread(target=_peak_rss_sampler, args=(stop, peak), daemon=True)
    sampler.start()
    started = time.monotonic()
    result = rebuild_profiles(full=True)
    seconds = time.monotonic() - started
    stop.set()
    sampler.join()
    print(
        f"rebuild: {result.users} profiles, {result.segments} segments, {result.outliers} outliers "
        f"in {seconds:.1f} s (target < 60 s), peak RSS {peak[0] / 2**30:.2f} GB (target < 2 GB)"
    )

    from shop.models import PlantedShopper  # bench only: the plugin never imports shop

    planted = {
        row[0]: row[1:] for row in PlantedShopper.objects.values_list("user_id", "shopper_type", "is_bot")
    }
    profiles = dict(UserProfile.objects.filter(pk__in=list(planted)).values_list("pk", "segment_id"))
    flags = dict(UserProfile.objects.filter(pk__in=list(planted)).values_list("pk", "is_outlier"))
    humans = [pk for pk, (_, bot) in planted.items() if not bot and pk in profiles]
    ari = adjusted_rand_score([planted[pk][0] for pk in humans], [profiles[pk] or -1 for pk in humans])
    bots = [pk for pk, (_, bot) in planted.items() if bot and pk in flags]
    caught = sum(flags[pk] for pk in bots) / max(len(bots), 1)
    false_flags = sum(flags[pk] for pk in humans) / max(len(humans), 1)
    print(
        f"recovery: ARI {ari:.3f} (target >= 0.8) over {len(humans)} planted humans; bots flagged "
        f"{caught:.1%} of {len(bots)} (target >= 90%); false-flag rate {false_flags:.2%} (target < 2%)"
    )

    from django.contrib.auth import get_user_model

    staff, _ = get_user_model().objects.get_or_create(
        username="bench-staff", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(staff)
    url = "/admin/recommendations/userprofile/"
    client.get(url)  # warm caches
    timings, counts = [], set()
    for query in ("", "?tag=loyal", "?propensity=high", "?is_outlier__exact=1"):
        with CaptureQueriesContext(connection) as captured:
            started = time.monotonic()
            response = client.get(url + query)
            timings.append((query or "(none)", (time.monotonic() - started) * 1000, response.status_code))
        counts.add(len(captured.captured_queries))
    for query, ms, status in timings:
        print(f"admin list {query}: {ms:.0f} ms (HTTP {status}, target < 300 ms)")
    print(f"admin list query counts: {sorted(counts)} (fixed: one value per page shape)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
