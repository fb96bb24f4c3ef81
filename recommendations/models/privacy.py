"""Privacy: tombstones of erased shoppers and the audit trail of erasures.

Neither table holds personal data. A subject (a user id or an anonymous visitor id) is
stored as a keyed hash: ``sha256(key ":" kind ":" value)`` where the key comes from
``RECOMMENDER["ERASURE_HASH_KEY"]`` (default: derived from ``SECRET_KEY``). The same
hash can be computed inside the database (:class:`KeyedSha256`), so the data bridge can
drop events of erased subjects with one anti-join and ingestion can refuse them with one
indexed lookup, without the table ever naming anyone.

Rotating the key (or ``SECRET_KEY`` when it is the source) orphans the tombstones: the
erased events are gone already, but late re-sends would be accepted again.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import models
from django.db.models import CharField, Exists, Func, OuterRef, Q, Value
from django.db.models.expressions import Combinable
from django.db.models.functions import Cast, Concat
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from behavior.outages import warn_now_and_then

logger = logging.getLogger(__name__)

__all__ = [
    "ErasedSubject",
    "ErasureAudit",
    "KeyedSha256",
    "erased_hashes",
    "events_exclusion",
    "subject_hash",
]

# Cache key of the "is anything erased at all?" flag: lets every read skip the anti-join.
ANY_ERASED_CACHE_KEY = "rec:privacy:any-erased"
ANY_ERASED_CACHE_SECONDS = 30


def _hash_key() -> str:
    from recommendations.conf import recommender_settings

    configured = recommender_settings.ERASURE_HASH_KEY
    if configured:
        return str(configured)
    # A derived key, so the hash is not a plain sha256 of a guessable id.
    return hashlib.sha256(f"recommender-erasure:{settings.SECRET_KEY}".encode()).hexdigest()


def subject_hash(kind: str, value: object) -> str:
    """The keyed hash of one subject (``kind`` is ``"user"`` or ``"visitor"``)."""
    return hashlib.sha256(f"{_hash_key()}:{kind}:{value}".encode()).hexdigest()


class KeyedSha256(Func):
    """``sha256(key:kind:expression)`` as lowercase hex, computed by the database.

    Postgres (11+) has ``sha256(bytea)`` built in (Django's ``SHA256`` needs pgcrypto);
    Django registers a ``SHA256`` function on every SQLite connection.
    """

    output_field = CharField()

    def __init__(self, kind: str, expression: Combinable | str) -> None:
        prefix = Value(f"{_hash_key()}:{kind}:", output_field=CharField())
        super().__init__(Concat(prefix, Cast(expression, output_field=CharField())))

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        template = "ENCODE(SHA256(CONVERT_TO(%(expressions)s, 'UTF8')), 'hex')"
        return self.as_sql(compiler, connection, template=template, **extra)

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(compiler, connection, function="SHA256", **extra)


class ErasedSubject(models.Model):
    """A tombstone: events of this (hashed) user or visitor are never stored or read again."""

    class Kind(models.TextChoices):
        USER = "user", _("User")
        VISITOR = "visitor", _("Anonymous visitor")

    kind = models.CharField(max_length=10, choices=Kind.choices, verbose_name=_("kind"))
    subject_hash = models.CharField(max_length=64, unique=True, verbose_name=_("subject hash"))
    erased_at = models.DateTimeField(default=timezone.now, verbose_name=_("erased at"))

    class Meta:
        verbose_name = _("erased subject")
        verbose_name_plural = _("erased subjects")

    def __str__(self) -> str:
        return f"erased {self.kind} {self.subject_hash[:12]}…"


class ErasureAudit(models.Model):
    """One run of ``forget_user``: who asked, when, and how many rows of each kind went.

    ``subject_hash`` is the keyed hash of the user id (the same as the user's tombstone),
    so a repeated request can be matched to the first one without naming the person.
    """

    subject_hash = models.CharField(max_length=64, db_index=True, verbose_name=_("subject hash"))
    requested_by = models.CharField(max_length=150, verbose_name=_("requested by"))
    counts = models.JSONField(default=dict, help_text=_("Rows deleted per kind."), verbose_name=_("counts"))
    visitor_count = models.PositiveIntegerField(
        default=0, help_text=_("Anonymous visitor ids erased."), verbose_name=_("visitor count")
    )
    created_at = models.DateTimeField(default=timezone.now, verbose_name=_("created at"))

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("erasure audit record")
        # Checked by the export endpoint (recommendations.api.permissions), not tied to this table.
        permissions = [("export_personal_data", _("Can export a person's data"))]
        verbose_name_plural = _("erasure audit records")

    def __str__(self) -> str:
        return f"erasure {self.subject_hash[:12]}… by {self.requested_by}"

    @property
    def total_deleted(self) -> int:
        return sum(int(v) for v in (self.counts or {}).values())


def any_erased() -> bool:
    """True when at least one subject was erased (cached a few seconds per cache).

    The cache is only a shortcut: while it is unreachable the answer comes from the database
    (never a guessed "nothing erased", which would let an erased shopper's events back in),
    so ingestion keeps working without Redis.
    """
    try:
        flag = cache.get(ANY_ERASED_CACHE_KEY)
    except Exception as exc:
        _cache_unavailable(exc)
        return ErasedSubject.objects.exists()
    if flag is None:
        flag = ErasedSubject.objects.exists()
        try:
            cache.set(ANY_ERASED_CACHE_KEY, flag, ANY_ERASED_CACHE_SECONDS)
        except Exception as exc:
            _cache_unavailable(exc)
    return bool(flag)


def mark_erased_in_cache() -> None:
    """Set the "something was erased" flag at once (after an erasure); harmless if the cache is down.

    Readers that cannot reach the cache ask the database, and a flag missing from the cache
    is read from the database too: a cache outage never hides an erasure.
    """
    try:
        cache.set(ANY_ERASED_CACHE_KEY, True, None)
    except Exception as exc:
        _cache_unavailable(exc)


def _cache_unavailable(error: BaseException) -> None:
    message = "Erasure flag: cache unavailable (%s); asking the database"
    warn_now_and_then(logger, "erasure-flag", message, type(error).__name__)


def erased_hashes(hashes: Iterable[str]) -> set[str]:
    """The subset of ``hashes`` that are tombstoned (one indexed query; none when nothing is erased)."""
    wanted = set(hashes)
    if not wanted or not any_erased():
        return set()
    return set(ErasedSubject.objects.filter(subject_hash__in=wanted).values_list("subject_hash", flat=True))


def events_exclusion() -> Q:
    """Events of erased users or visitors, as a ``Q`` on ``behavior.Event`` (the data bridge's hook).

    ``Q()`` (excludes nothing) when nothing was ever erased, so normal reads pay no join.
    """
    if not any_erased():
        return Q()
    by_user = ErasedSubject.objects.filter(subject_hash=KeyedSha256("user", OuterRef("user_id")))
    by_visitor = ErasedSubject.objects.filter(subject_hash=KeyedSha256("visitor", OuterRef("visitor_id")))
    # A visitor tombstone covers anonymous events only (a shared browser's other users keep theirs).
    return Q(Exists(by_user)) | (Q(user__isnull=True) & ~Q(visitor_id="") & Q(Exists(by_visitor)))


def drop_erased_rows(rows: list[tuple]) -> list[tuple]:
    """Ingestion filter: rows (``behavior.services.storage.COLUMNS`` order) of erased subjects removed."""
    if not rows or not any_erased():
        return rows
    from behavior.services.storage import COLUMNS

    user_at, visitor_at = COLUMNS.index("user_id"), COLUMNS.index("visitor_id")

    def hashes(row: tuple) -> list[str]:
        found = []
        if row[user_at] is not None:
            found.append(subject_hash("user", row[user_at]))
        elif row[visitor_at]:  # a visitor tombstone covers anonymous events only
            found.append(subject_hash("visitor", row[visitor_at]))
        return found

    erased = erased_hashes(h for row in rows for h in hashes(row))
    if not erased:
        return rows
    return [row for row in rows if not erased.intersection(hashes(row))]


def _register_ingestion_filter() -> None:
    # behavior must not import recommendations: it exposes a hook list and we register into
    # it when the models load (every web, worker and command process loads them).
    from behavior.services import ingest as services

    filters = getattr(services, "ROW_FILTERS", None)
    if filters is not None and drop_erased_rows not in filters:
        filters.append(drop_erased_rows)


_register_ingestion_filter()
