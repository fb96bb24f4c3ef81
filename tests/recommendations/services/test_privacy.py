"""Erasure, export, tracking opt-out and retention scheduling (recommendations.services.privacy)."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from behavior.models import Event
from behavior.services.ingest import ingest_events
from recommendations.data.events import load_event_log
from recommendations.data.histories import load_histories
from recommendations.models import (
    ErasedSubject,
    ErasureAudit,
    ExperimentAssignment,
    Impression,
    NotInterested,
    PrecomputedList,
    ShadowScore,
    UserProfile,
)
from recommendations.models.privacy import ANY_ERASED_CACHE_KEY, subject_hash
from recommendations.services.privacy import export_user_data, forget_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def person(user_factory, event_factory, product_factory):
    """A user with 3 own events, 2 anonymous events of their visitor id (linked at login), a
    profile, a precomputed list, an impression and a mark; plus a bystander on the same browser."""
    user = user_factory(username="alice")
    bystander = user_factory(username="bob")
    shoe, hat = product_factory(sku="SHOE"), product_factory(sku="HAT")
    for item in (shoe, hat, shoe):
        event_factory(user=user, item=item, visitor_id="vid-alice-0001")
    for item in (shoe, hat):
        event_factory(user=None, item=item, visitor_id="vid-alice-0001")
    event_factory(user=bystander, item=hat, visitor_id="vid-alice-0001")  # shared browser: not Alice's
    event_factory(user=None, item=hat, visitor_id="vid-other-0002")
    UserProfile.objects.create(user=user, propensity=0.5, tags=[{"label": "loyal"}])
    PrecomputedList.objects.create(user=user, item_keys=["HAT"], scores=[1.0], reasons=["popular"])
    Impression.objects.create(user=user, visitor_id="vid-alice-0001", item_keys=["HAT"], placement="home")
    Impression.objects.create(user=None, visitor_id="vid-alice-0001", item_keys=["SHOE"], placement="home")
    NotInterested.objects.create(user=user, item_key="SHOE")
    cache.set(f"rec:pre:{user.pk}", {"keys": ["HAT"]})
    cache.set(f"rec:rt:u:{user.pk}:123.0:1:10", [["HAT", 1.0]])
    cache.set("rec:rt:v:vid-alice-0001:99.0:1:10", [["HAT", 1.0]])
    cache.set("rec:rt:v:vid-other-0002:99.0:1:10", [["HAT", 1.0]])
    return user, bystander


def test_forget_user_deletes_every_kind_and_counts_them(person, arm_factory, shadow_score_factory):
    # given the person also in an experiment, as a user and earlier as an anonymous visitor,
    # and the bystander in it too; a shadow candidate scored requests of each of them
    user, bystander = person
    shadow = shadow_score_factory(user=user)
    shadow_score_factory(run=shadow.run, user=None, visitor_id="vid-alice-0001")
    kept = shadow_score_factory(run=shadow.run, user=bystander)
    arm = arm_factory()
    ExperimentAssignment.objects.create(experiment=arm.experiment, arm=arm, user=user)
    ExperimentAssignment.objects.create(experiment=arm.experiment, arm=arm, visitor_id="vid-alice-0001")
    ExperimentAssignment.objects.create(experiment=arm.experiment, arm=arm, user=bystander)

    # when
    result = forget_user(user, requested_by="command:ops")

    # then
    assert result.counts == {
        "events": 5,
        "profiles": 1,
        "precomputed_lists": 1,
        "impressions": 2,
        "shadow_scores": 2,
        "not_interested": 1,
        "experiment_assignments": 2,
    }
    assert list(ShadowScore.objects.values_list("pk", flat=True)) == [kept.pk]
    assert result.visitor_count == 1
    assert not Event.objects.filter(user=user).exists()
    assert not Event.objects.filter(visitor_id="vid-alice-0001", user__isnull=True).exists()
    assert Event.objects.filter(user=bystander).count() == 1
    assert Event.objects.filter(visitor_id="vid-other-0002").count() == 1
    assert not UserProfile.objects.filter(user=user).exists()
    assert not PrecomputedList.objects.filter(user=user).exists()
    assert not Impression.objects.exists()
    assert not NotInterested.objects.exists()
    assert list(ExperimentAssignment.objects.values_list("user_id", flat=True)) == [bystander.pk]


def test_forget_user_clears_cached_lists_of_the_person_only(person):
    # given
    user, _ = person

    # when
    forget_user(user, requested_by="t")

    # then
    assert cache.get(f"rec:pre:{user.pk}") is None
    assert cache.get(f"rec:rt:u:{user.pk}:123.0:1:10") is None
    assert cache.get("rec:rt:v:vid-alice-0001:99.0:1:10") is None
    assert cache.get("rec:rt:v:vid-other-0002:99.0:1:10") == [["HAT", 1.0]]


def test_audit_record_has_counts_and_no_personal_data(person):
    # given
    user, _ = person

    # when
    forget_user(user, requested_by="admin:staff1")

    # then
    audit = ErasureAudit.objects.get()
    assert audit.subject_hash == subject_hash("user", user.pk)
    assert audit.requested_by == "admin:staff1"
    assert audit.counts["events"] == 5
    assert audit.visitor_count == 1
    stored = json.dumps([audit.subject_hash, audit.counts, audit.requested_by])
    for personal in ("alice", "alice@example.com", "vid-alice-0001"):
        assert personal not in stored
    assert set(ErasedSubject.objects.values_list("kind", flat=True)) == {"user", "visitor"}
    assert not ErasedSubject.objects.filter(subject_hash__contains="alice").exists()


def test_forget_user_is_idempotent(person):
    # given
    user, _ = person
    forget_user(user, requested_by="t")

    # when
    again = forget_user(user, requested_by="t")

    # then
    assert again.total == 0
    assert ErasedSubject.objects.count() == 2
    assert ErasureAudit.objects.count() == 2


def test_erased_subject_events_are_refused_at_ingestion_and_never_loaded(person, product_factory):
    # given
    user, bystander = person
    forget_user(user, requested_by="t")

    # when: the old browser re-sends anonymous events, the user comes back, a stranger shops
    late = ingest_events([{"event_type": "view", "item": "HAT"}], visitor_id="vid-alice-0001")
    back = ingest_events([{"event_type": "view", "item": "SHOE"}], user=user)
    bob = ingest_events([{"event_type": "view", "item": "SHOE"}], user=bystander, visitor_id="vid-alice-0001")
    other = ingest_events([{"event_type": "view", "item": "SHOE"}], visitor_id="vid-new-0003")

    # then
    assert (late.accepted, back.accepted, bob.accepted, other.accepted) == (0, 0, 1, 1)
    assert not Event.objects.filter(user=user).exists()
    assert set(load_event_log().users.tolist()) == {"bob", "v:vid-other-0002", "v:vid-new-0003"}


def test_events_slipped_in_after_erasure_are_excluded_from_training_and_serving(person, product_factory):
    # given: a row written behind the ingestion path's back (e.g. a racing writer)
    user, _ = person
    forget_user(user, requested_by="t")
    Event.objects.create(
        event_id=uuid.uuid4(),
        user=user,
        item=product_factory(sku="RACE"),
        event_type="view",
        occurred_at=timezone.now(),
    )
    Event.objects.create(
        event_id=uuid.uuid4(),
        user=None,
        visitor_id="vid-alice-0001",
        item=product_factory(sku="RACE2"),
        event_type="view",
        occurred_at=timezone.now(),
    )

    # when
    log = load_event_log()
    histories = load_histories(users=[user], visitors=["vid-alice-0001"])

    # then
    assert "alice" not in set(log.users.tolist())
    assert "v:vid-alice-0001" not in set(log.users.tolist())
    assert histories == {}


def test_nothing_erased_means_no_exclusion_cost(person):
    # given
    from recommendations.models.privacy import events_exclusion

    cache.delete(ANY_ERASED_CACHE_KEY)

    # when
    exclusion = events_exclusion()

    # then
    assert not exclusion  # Q(): the data bridge adds no join


def test_export_user_data_lists_everything_held(person, shadow_score_factory):
    # given a shadow candidate's list for one of the person's requests, and one for the bystander
    user, bystander = person
    shadow = shadow_score_factory(user=user, shadow_keys=["HAT", "SHOE"])
    shadow_score_factory(run=shadow.run, user=bystander)

    # when
    data = export_user_data(user)

    # then
    assert data["user"] == {"username": "alice", "email": "alice@example.com"}
    assert data["visitor_ids"] == ["vid-alice-0001"]
    assert len(data["events"]) == 5
    assert sorted(e["item"] for e in data["events"]) == ["HAT", "HAT", "SHOE", "SHOE", "SHOE"]
    assert data["profile"]["propensity"] == 0.5
    assert data["precomputed_recommendations"]["items"] == ["HAT"]
    assert len(data["impressions"]) == 2
    assert data["not_interested"] == ["SHOE"]
    assert [(row["recommendation_id"], row["shadow_items"]) for row in data["shadow_scores"]] == [
        (str(shadow.recommendation_id), ["HAT", "SHOE"])
    ]
    json.dumps(data)  # JSON-able as is


def test_forget_user_command_and_unknown_user(person, capsys):
    # given: the person fixture (alice)

    # when
    call_command("forget_user", "alice")

    # then
    assert "Erased alice" in capsys.readouterr().out
    assert ErasureAudit.objects.get().requested_by.startswith("command:")
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        call_command("forget_user", "nobody")


def test_export_user_data_command_writes_json_file(person, tmp_path):
    # given
    out = tmp_path / "alice.json"

    # when
    call_command("export_user_data", "alice", "--out", str(out))

    # then
    data = json.loads(out.read_text())
    assert data["user"]["username"] == "alice"
    assert len(data["events"]) == 5
    with pytest.raises(CommandError, match="does not exist"):
        call_command("export_user_data", "alice", "--out", str(tmp_path / "missing" / "x.json"))


def test_export_endpoint_is_staff_only(client, person, staff_user, other_user):
    # given
    url = reverse("privacy-user-export", kwargs={"username": "alice"})

    # when
    anonymous = client.get(url)
    client.force_login(other_user)
    non_staff = client.get(url)
    client.force_login(staff_user)
    staff = client.get(url)
    missing = client.get(reverse("privacy-user-export", kwargs={"username": "nobody"}))

    # then
    assert anonymous.status_code in (401, 403)
    assert non_staff.status_code == 403
    assert staff.status_code == 200
    assert staff.json()["user"]["username"] == "alice"
    assert staff["Cache-Control"] == "no-store"
    assert missing.status_code == 404


def test_admin_forget_action_on_the_user_admin(client, person, staff_user):
    # given
    user, bystander = person
    client.force_login(staff_user)

    # when
    response = client.post(
        reverse("admin:auth_user_changelist"),
        {"action": "forget_selected_users", "_selected_action": [user.pk]},
        follow=True,
    )

    # then
    assert response.status_code == 200
    assert "Erased 1 user(s)" in response.content.decode()
    assert not Event.objects.filter(user=user).exists()
    assert Event.objects.filter(user=bystander).count() == 1
    assert ErasureAudit.objects.get().requested_by == f"admin:{staff_user.username}"


def test_do_not_track_page_view_stores_no_event(client, product_factory):
    # given
    product_factory(sku="DNT1")

    # when
    tracked = client.get("/p/DNT1/", HTTP_USER_AGENT="Mozilla/5.0")
    opted_out = client.get("/p/DNT1/", HTTP_USER_AGENT="Mozilla/5.0", HTTP_DNT="1")

    # then
    assert tracked.status_code == opted_out.status_code == 200
    assert Event.objects.filter(event_type="view").count() == 1


def test_retention_prune_is_scheduled_and_the_scheduled_task_prunes(event_factory, user, settings):
    # given: the default schedule, 30-, 20- and 10-day retentions of events, impressions and marks,
    # and of each an old and a recent one
    from django_celery_beat.models import PeriodicTask

    import behavior.tasks  # noqa: F401  (what the worker's autodiscovery imports)
    from shop.celery import app

    call_command("install_schedule")
    settings.RECOMMENDER = {
        **settings.RECOMMENDER,
        "EVENT_RETENTION_DAYS": 30,
        "IMPRESSION_RETENTION_DAYS": 20,
        "NOT_INTERESTED_RETENTION_DAYS": 10,
    }
    old = event_factory(occurred_at=timezone.now() - timedelta(days=31))
    recent = event_factory(occurred_at=timezone.now() - timedelta(days=29))
    for days in (21, 19):
        Impression.objects.create(
            user=user, item_keys=["A"], created_at=timezone.now() - timedelta(days=days)
        )
    for days in (11, 9):
        NotInterested.objects.create(
            user=user, item_key=f"K{days}", created_at=timezone.now() - timedelta(days=days)
        )
    entry = PeriodicTask.objects.get(task="behavior.prune_events")

    # when: the task is run exactly as beat would send it (its registered name, its stored args)
    deleted = (
        app.tasks[entry.task]
        .apply(args=json.loads(entry.args or "[]"), kwargs=json.loads(entry.kwargs or "{}"))
        .get()
    )

    # then
    assert entry.enabled
    assert deleted == {"events": 1, "impressions": 1, "shadow_scores": 0, "not_interested": 1, "event_ids": 0}
    assert Impression.objects.count() == NotInterested.objects.count() == 1
    assert NotInterested.objects.get().item_key == "K9"
    assert not Event.objects.filter(pk=old.pk).exists()
    assert Event.objects.filter(pk=recent.pk).exists()


def test_retention_of_none_keeps_impressions_and_marks(user, settings):
    # given
    from recommendations.services.retention import prune_serving_data

    settings.RECOMMENDER = {
        **settings.RECOMMENDER,
        "IMPRESSION_RETENTION_DAYS": None,
        "NOT_INTERESTED_RETENTION_DAYS": None,
    }
    Impression.objects.create(user=user, item_keys=["A"], created_at=timezone.now() - timedelta(days=5000))
    NotInterested.objects.create(user=user, item_key="A", created_at=timezone.now() - timedelta(days=5000))

    # when
    counts = prune_serving_data(now=timezone.now(), batch_size=1)

    # then
    assert counts == {"impressions": 0, "shadow_scores": 0, "not_interested": 0}
    assert Impression.objects.count() == NotInterested.objects.count() == 1
