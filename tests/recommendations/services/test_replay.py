"""Off-policy replay of a model version on logged, explored impressions."""

from __future__ import annotations

import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from recommendations.models import Impression
from recommendations.services.replay import UnknownVersion, replay_version

pytestmark = pytest.mark.django_db


def _candidate_order(active_model, history, keys):
    """The two keys in the order the version ranks them for ``history``."""
    ranked = [key for key, _score in active_model.recommender.recommend([history], 1000)[0]]
    return sorted(keys, key=lambda key: ranked.index(key) if key in ranked else len(ranked))


@pytest.fixture
def logged_lists(catalogue, active_model, event_factory):
    """Two explored lists of two items (each position logged at 0.5) shown to one visitor after
    they looked at a shoe: the first in the version's own order, the second reversed; the visitor
    clicked the first item of each."""
    viewed_at = timezone.now() - timedelta(hours=2)
    event_factory(user=None, visitor_id="visitor-0200", item=catalogue["shoes"][1], occurred_at=viewed_at)
    order = _candidate_order(active_model, [("S1", "view", viewed_at.timestamp())], ["S4", "H4"])
    products = {product.sku: product for group in catalogue.values() for product in group}
    served_at = timezone.now() - timedelta(hours=1)
    for keys in (order, order[::-1]):
        impression = Impression.objects.create(
            recommendation_id=uuid.uuid4(),
            visitor_id="visitor-0200",
            item_keys=keys,
            propensities=[0.5, 0.5],
            placement="home",
            created_at=served_at,
        )
        event_factory(
            user=None,
            visitor_id="visitor-0200",
            item=products[keys[0]],
            event_type="click",
            recommendation_id=impression.recommendation_id,
        )
    return order


def test_replay_weights_the_matching_positions_by_their_logged_probability(logged_lists):
    # when version 1 is replayed
    report = replay_version(1)
    # then only the list in its own order matches: IPS = (1 / 0.5 + 0) / 2 lists; SNIPS per
    # position: (2 / 2) + (0 / 2); the lists as served got one click each
    assert report.estimate.lists == 2
    assert report.estimate.matched == 2
    assert report.estimate.ips.value == pytest.approx(1.0)
    assert report.estimate.snips.value == pytest.approx(1.0)
    assert report.logged_clicks_per_list == pytest.approx(1.0)


def test_lists_not_explored_and_other_placements_are_left_out(logged_lists):
    Impression.objects.create(visitor_id="visitor-0200", item_keys=["S4", "H4"], placement="home")
    assert replay_version(1).estimate.lists == 2
    assert replay_version(1, placement="cart").estimate.lists == 0


def test_a_missing_or_unloadable_version_is_refused(active_model, model_version_factory):
    with pytest.raises(UnknownVersion, match="no model version 99"):
        replay_version(99)
    broken = model_version_factory()
    with pytest.raises(UnknownVersion, match="cannot be loaded"):
        replay_version(broken.number)


def test_the_command_prints_both_estimates(logged_lists):
    out = StringIO()
    call_command("evaluate", "--replay", "--version", "1", stdout=out)
    text = out.getvalue()
    assert "Version 1 replayed on 2 logged lists" in text
    assert "IPS" in text and "SNIPS" in text
    assert "1.0000" in text


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--replay"], "--replay needs --version"),
        (["--replay", "--version", "42"], "no model version 42"),
        (["--replay", "--version", "1", "--days", "0"], "--days must be at least 1"),
        ([], "name an events CSV file"),
    ],
)
def test_the_command_refuses_bad_input(active_model, arguments, message):
    with pytest.raises(CommandError, match=message):
        call_command("evaluate", *arguments, stdout=StringIO())


def test_the_command_says_when_nothing_was_explored(active_model):
    with pytest.raises(CommandError, match="no explored impressions"):
        call_command("evaluate", "--replay", "--version", "1", stdout=StringIO())
