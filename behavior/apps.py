from typing import Any

from django.apps import AppConfig
from django.db import DEFAULT_DB_ALIAS
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class BehaviorConfig(AppConfig):
    name = "behavior"
    verbose_name = _("Behaviour events")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Login merge of anonymous history into the user.
        from behavior import signals  # noqa: F401

        post_migrate.connect(_partitions_after_migrate, sender=self, dispatch_uid="behavior.partitions")


def _partitions_after_migrate(using: str = DEFAULT_DB_ALIAS, **_: Any) -> None:
    """After ``migrate`` (and a test flush): the partitions of now and ahead exist (PostgreSQL).

    A database migrated just now would otherwise store everything in the DEFAULT partitions
    until the first ``behavior.maintain_partitions`` run.
    """
    if using != DEFAULT_DB_ALIAS:
        return
    from behavior.services import partition_maintenance, partitions

    partitions.forget_layouts()  # the migration may have changed the tables
    partition_maintenance.maintain_all()
