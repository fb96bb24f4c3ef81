"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os

import pytest

from tests import factories


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``gpu``-marked tests are skipped where CUDA is not available (CI never needs a GPU)."""
    marked = [item for item in items if item.get_closest_marker("gpu")]
    if not marked:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in marked:
        item.add_marker(skip)


def normal_cpu_priority() -> None:
    """Give every thread of this process the default scheduling back (``SCHED_OTHER``, nice 0).

    Also the ``preexec_fn`` of a server that a test (re)starts: a child inherits its parent's
    policy, and a Postgres restarted from a ``SCHED_IDLE`` test runner would serve everything
    after it (other tests, benchmarks on the same host) only on otherwise idle cores.
    """
    if not hasattr(os, "sched_setscheduler"):
        return
    try:
        threads = [int(name) for name in os.listdir("/proc/self/task")]
    except OSError:
        threads = [0]
    for thread in threads:
        try:
            if os.sched_getscheduler(thread) == os.SCHED_IDLE:
                os.sched_setscheduler(thread, os.SCHED_OTHER, os.sched_param(0))
            if os.getpriority(os.PRIO_PROCESS, thread) > 0:
                os.setpriority(os.PRIO_PROCESS, thread, 0)
        except OSError:  # a thread that ended, or no privilege to lower the niceness again
            continue


@pytest.fixture(autouse=True)
def _normal_cpu_priority_after_each_test():
    """``retrain`` and ``rebuild_profiles`` lower their process's CPU priority, as they should.

    Called in-process by a test, they would leave the test runner (and whatever it starts
    afterwards) at background priority: restore it after every test.
    """
    yield
    normal_cpu_priority()


def require_service(name: str, available: bool) -> None:
    """Fail in CI when a service is missing; skip elsewhere, with the reason."""
    if available:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{name} is required in CI but is not reachable")
    pytest.skip(f"{name} is not reachable on this machine")


@pytest.fixture(autouse=True)
def _clear_cache():
    """Each test starts with an empty cache (the cache may be a shared Redis in CI).

    The serving catalogue's per-process item snapshot goes with it: it is valid only against
    the change log kept in that cache; so do the item names kept for explanations.
    """
    from django.core.cache import cache

    from recommendations.api import fallback
    from recommendations.services.experiments import assignment, plans
    from recommendations.services.merchandising import rules as merchandising_rules
    from recommendations.services.serving import catalogue, names
    from recommendations.services.shadow import sampling as shadow_sampling

    cache.clear()
    fallback.clear()  # the popular lists a process keeps for database outages
    catalogue.reset()
    names.clear()  # item names kept per process for explanations
    plans.forget_plans()  # the running experiments and assignments kept per process
    shadow_sampling.forget_runs()  # the active shadow runs kept per process
    assignment.forget_kept()
    merchandising_rules.forget_rules()  # the merchandising rules kept per process
    yield


@pytest.fixture(autouse=True)
def _forget_partition_layouts():
    """A test's partitions go with its transaction: no process may remember them afterwards."""
    from behavior.services import partitions

    partitions.forget_layouts()
    yield
    partitions.forget_layouts()


@pytest.fixture
def user_factory(db):
    return factories.UserFactory


@pytest.fixture
def staff_factory(db):
    return factories.StaffFactory


@pytest.fixture
def category_factory(db):
    return factories.CategoryFactory


@pytest.fixture
def product_factory(db):
    return factories.ProductFactory


@pytest.fixture
def order_factory(db):
    return factories.OrderFactory


@pytest.fixture
def order_item_factory(db):
    return factories.OrderItemFactory


@pytest.fixture
def event_factory(db):
    return factories.EventFactory


@pytest.fixture
def experiment_factory(db):
    return factories.ExperimentFactory


@pytest.fixture
def arm_factory(db):
    return factories.ExperimentArmFactory


@pytest.fixture
def rule_factory(db):
    return factories.MerchandisingRuleFactory


@pytest.fixture
def model_version_factory(db):
    return factories.ModelVersionFactory


@pytest.fixture
def shadow_run_factory(db):
    return factories.ShadowRunFactory


@pytest.fixture
def shadow_score_factory(db):
    return factories.ShadowScoreFactory


@pytest.fixture
def user(user_factory):
    return user_factory()


@pytest.fixture
def other_user(user_factory):
    return user_factory()


@pytest.fixture
def staff_user(staff_factory):
    return staff_factory()


@pytest.fixture
def product(product_factory):
    return product_factory()
