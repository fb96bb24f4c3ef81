"""The profile rebuild fanned out to two real Celery workers writes the profiles one process writes."""

from __future__ import annotations

import pytest

from tests.integration.harness import SEED, stack, wait_for

pytestmark = pytest.mark.integration

# Every profile as written (its segment by number: segment rows differ per run), then its tag rows.
PROFILES = (
    "SELECT p.user_id, s.number, p.tags::text, p.features::text, p.propensity, p.propensity_source, "
    "p.is_outlier, p.outlier_reason, p.last_activity_at, p.model_version, p.notes::text "
    "FROM recommendations_userprofile p LEFT JOIN recommendations_segment s ON s.id = p.segment_id "
    "ORDER BY p.user_id"
)
TAGS = "SELECT profile_id, label, weight FROM recommendations_profiletag ORDER BY profile_id, label"
SEGMENTS = (
    "SELECT number, traits::text, size, centre::text FROM recommendations_segment "
    "WHERE run_id = (SELECT max(id) FROM recommendations_profilerun) ORDER BY number"
)


def test_chunks_on_two_workers_write_the_profiles_of_one_process(tmp_path):
    with stack(tmp_path) as env:
        # given a small shop with an active model, and its profiles rebuilt by one process
        env.script(SEED)
        env.manage("retrain", timeout=600)
        env.manage("rebuild_profiles", "--full")
        one_process, tags, segments = env.query(PROFILES), env.query(TAGS), env.query(SEGMENTS)
        assert len(one_process) == 16 and segments and tags
        assert (
            env.scalar("SELECT count(*) FROM recommendations_profilerun WHERE model_version IS NOT NULL") == 1
        )
        env.query("DELETE FROM recommendations_profiletag")
        env.query("DELETE FROM recommendations_userprofile")
        # when two single-process workers take the chunks of 4 users each (settings_integration:
        # the network scores groups of 4, in one process as in the chunks)
        workers = [env.worker("w1", concurrency=1), env.worker("w2", concurrency=1)]
        for worker in workers:
            wait_for(lambda w=worker: "ready." in env.log(w), timeout=120, what="a worker to start")
        out = env.manage("rebuild_profiles", "--full", "--chunk-users", "4", "--workers", timeout=300)
        # then the profiles, their tags and the segments are the same, row for row, and the
        # command followed the chunks to the end
        assert env.query(PROFILES) == one_process
        assert env.query(TAGS) == tags
        assert env.query(SEGMENTS) == segments
        lines = out.splitlines()
        summary = next(i for i, line in enumerate(lines) if line.startswith("full rebuild (run "))
        assert lines[summary - 1] == "chunks done: 4/4", out
        assert " 16 profiles in 4 chunks" in lines[summary]
        status, chunks = env.query(
            "SELECT status, chunks_total FROM recommendations_profilerun ORDER BY id DESC LIMIT 1"
        )[0]
        assert (status, chunks) == ("completed", 4)
        # and both workers took chunks (each chunk twice: its features, then its profiles)
        done = [env.log(w).count("recommendations.rebuild_profiles_chunk[") for w in workers]
        assert all(done), done
        print(f"\nchunk passes received per worker (with their 'succeeded' lines): {done}")
