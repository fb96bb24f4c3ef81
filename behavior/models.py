"""The append-only behaviour event log."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from behavior.items import item_model_label


class EventType(models.TextChoices):
    """The fixed vocabulary of shopper actions (labels in the "event type" context: "View" means
    something else in Django's own catalogue)."""

    VIEW = "view", pgettext_lazy("event type", "View")
    CLICK = "click", pgettext_lazy("event type", "Click")
    ADD_TO_CART = "add_to_cart", pgettext_lazy("event type", "Add to cart")
    REMOVE_FROM_CART = "remove_from_cart", pgettext_lazy("event type", "Remove from cart")
    WISHLIST = "wishlist", pgettext_lazy("event type", "Wishlist")
    PURCHASE = "purchase", pgettext_lazy("event type", "Purchase")
    SEARCH = "search", pgettext_lazy("event type", "Search")


class EventOrigin(models.TextChoices):
    """Who wrote an event down: the shop itself, a trusted server-to-server client, or an import."""

    SHOP = "", _("Shop (its pages, the beacon, its own code)")
    CLIENT = "client", _("Trusted server-to-server client")
    IMPORT = "import", _("CSV import")


# Event types that must name an item (a search may not).
ITEM_EVENT_TYPES = frozenset(t.value for t in EventType if t != EventType.SEARCH)


class Event(models.Model):
    """One thing a shopper did. Rows are only ever inserted (and erased for privacy).

    ``event_id`` is the client's idempotency key: re-sending an event stores nothing new.
    Either ``user`` or ``visitor_id`` identifies the shopper; at login the visitor's
    events are attached to the user (``behavior.services.identity.merge_visitor_into_user``).

    On PostgreSQL the table is partitioned by ``occurred_at`` (migration 0007,
    docs/partitioning.md): there the database holds ``(id, occurred_at)`` as primary key and
    ``(event_id, occurred_at)`` unique, and :class:`RecentEventId` keeps client ids unique for
    a window; the model keeps the plain table's declaration, which SQLite still has.
    """

    event_id = models.UUIDField(unique=True, default=uuid.uuid4, editable=False, verbose_name=_("event id"))
    # No index of Django's own on the two foreign keys: the named (user, occurred_at) and
    # (item) indexes below serve every lookup by user or item (CASCADE deletes included).
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="behavior_events",
        db_index=False,
        verbose_name=_("user"),
    )
    visitor_id = models.CharField(max_length=64, blank=True, default="", verbose_name=_("visitor id"))
    session_id = models.CharField(max_length=64, blank=True, default="", verbose_name=_("session id"))
    # A deleted item cannot be recommended any more; its events go with it (CASCADE keeps
    # the log free of dangling rows that training would have to skip).
    item = models.ForeignKey(
        item_model_label(),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="behavior_events",
        db_index=False,
        verbose_name=_("item"),
    )
    event_type = models.CharField(max_length=20, choices=EventType.choices, verbose_name=_("event type"))
    value = models.DecimalField(
        max_digits=12, decimal_places=2, null=True, blank=True, verbose_name=_("value")
    )
    quantity = models.PositiveIntegerField(default=1, verbose_name=_("quantity"))
    occurred_at = models.DateTimeField(default=timezone.now, verbose_name=_("occurred at"))
    received_at = models.DateTimeField(default=timezone.now, verbose_name=_("received at"))
    recommendation_id = models.UUIDField(null=True, blank=True, verbose_name=_("recommendation id"))
    placement = models.CharField(max_length=64, blank=True, default="", verbose_name=_("placement"))
    position = models.PositiveSmallIntegerField(null=True, blank=True, verbose_name=_("position"))
    context = models.JSONField(default=dict, blank=True, verbose_name=_("context"))
    is_bot = models.BooleanField(default=False, verbose_name=_("is bot"))
    # Events a server-to-server client sent for a visitor it named are marked "client": the
    # visitor id is then that client's word, not a cookie this server issued.
    origin = models.CharField(
        max_length=8,
        choices=EventOrigin.choices,
        blank=True,
        default="",
        db_default="",
        verbose_name=_("origin"),
    )

    class Meta:
        ordering = ["-occurred_at"]
        permissions = [
            (
                "record_for_visitors",
                _("Can record events for visitor ids it names (server-to-server clients with a token)"),
            )
        ]
        # Every index is paid for by every insert (Postgres' b-tree maintenance is most of
        # the cost of storing an event), so each one here serves a real query:
        # - (user, occurred_at): a user's history, newest first; lookups by user (CASCADE);
        # - (visitor_id, occurred_at) of anonymous rows only: every query by visitor id
        #   (history, merge at login, erasure, training) also asks for user IS NULL, and
        #   events of signed-in shoppers then cost this index nothing;
        # - item: lookups by item (CASCADE deletes); nothing reads an item's events by
        #   time, and the column alone is a fifth of the size (b-tree deduplication of the
        #   repeated ids), which keeps more of the indexes in the buffer cache;
        # - recommendation_id where set (attribution).
        # Time ranges (training windows, popularity, pruning, the dashboard) use the BRIN
        # index of migration 0002 (Postgres) instead of a b-tree on occurred_at; the admin
        # lists by primary key. Nothing reads by event type without a user or a time range.
        indexes = [
            models.Index(fields=["user", "occurred_at"], name="behavior_ev_user_time"),
            models.Index(
                fields=["visitor_id", "occurred_at"],
                name="behavior_ev_anon_visitor_time",
                condition=models.Q(user__isnull=True),
            ),
            models.Index(fields=["item"], name="behavior_ev_item"),
            models.Index(
                fields=["recommendation_id"],
                name="behavior_ev_recommendation",
                condition=models.Q(recommendation_id__isnull=False),
            ),
        ]
        verbose_name = _("event")
        verbose_name_plural = _("events")

    def __str__(self) -> str:
        who = f"user {self.user_id}" if self.user_id else f"visitor {self.visitor_id or '?'}"
        return f"{self.event_type} by {who} at {self.occurred_at:%Y-%m-%d %H:%M}"


class RecentEventId(models.Model):
    """A client's event id received in the last ``EVENT_ID_WINDOW_DAYS`` (PostgreSQL only).

    On PostgreSQL the events table is partitioned by ``occurred_at``, and a partitioned table
    can only enforce uniqueness on keys that include the partition column: the events table
    holds ``(event_id, occurred_at)`` unique. This table keeps ``event_id`` alone unique for
    the window, so a re-send whose time changed (a client that left ``occurred_at`` to the
    server) is still recognised, and a reused id with another time is refused
    (``behavior.services.event_ids``; docs/partitioning.md). On SQLite ``Event.event_id`` is
    unique by itself and this table stays empty.
    """

    event_id = models.UUIDField(primary_key=True, verbose_name=_("event id"))
    # the time stored with the id: a re-send naming another time is a reused id
    occurred_at = models.DateTimeField(verbose_name=_("occurred at"))
    received_at = models.DateTimeField(default=timezone.now, db_index=True, verbose_name=_("received at"))

    class Meta:
        verbose_name = _("recent event id")
        verbose_name_plural = _("recent event ids")

    def __str__(self) -> str:
        return str(self.event_id)
