"""The list refresh fanned out to two real Celery workers stores the lists one process stores."""

from __future__ import annotations

import pytest

from tests.integration.harness import SEED, stack, wait_for

pytestmark = pytest.mark.integration

LISTS = (
    "SELECT user_id, item_keys::text, scores::text, reasons::text, model_version "
    "FROM recommendations_precomputedlist ORDER BY user_id"
)


def test_chunks_on_two_workers_store_the_lists_of_one_process(tmp_path):
    with stack(tmp_path) as env:
        # given a small shop with an active model, and its lists refreshed by one process
        env.script(SEED)
        env.manage("retrain", timeout=600)
        env.manage("refresh_recommendations", "--lists-only", "--chunk-users", "1000")
        one_process = env.query(LISTS)
        assert len(one_process) == 15 and env.scalar("SELECT count(*) FROM recommendations_listrefresh") == 1
        env.query("DELETE FROM recommendations_precomputedlist")
        # when two single-process workers take the chunks of 4 users each
        workers = [env.worker("w1", concurrency=1), env.worker("w2", concurrency=1)]
        for worker in workers:
            wait_for(lambda w=worker: "ready." in env.log(w), timeout=120, what="a worker to start")
        out = env.manage(
            "refresh_recommendations", "--lists-only", "--chunk-users", "4", "--workers", timeout=300
        )
        # then the lists are the same, row for row, and the command followed the chunks to the end
        assert env.query(LISTS) == one_process
        assert out.splitlines()[-2] == "chunks done: 4/4", out
        assert "precomputed 15 lists in 4 chunks" in out.splitlines()[-1]
        status, chunks = env.query(
            "SELECT status, chunks_total FROM recommendations_listrefresh ORDER BY id DESC LIMIT 1"
        )[0]
        assert (status, chunks) == ("done", 4)
        # and both workers took chunks
        done = [env.log(w).count("recommendations.refresh_lists_chunk[") for w in workers]
        assert all(done), done
        print(f"\nchunks received per worker (with their 'succeeded' lines): {done}")
