"""Permissions of the staff endpoints: Django model permissions, never ``is_staff`` alone.

- reading a shopper's profile (``GET /api/profiles/<username>/``) needs
  ``recommendations.view_userprofile`` (Django's "Can view user profile");
- exporting a person's data (``GET /api/privacy/users/<username>/export/``) needs
  ``recommendations.export_personal_data`` ("Can export a person's data"), a permission of its
  own because an export holds everything (events, e-mail address), not only the profile.

Superusers hold every permission; any other account, staff or not, only those granted to it
or its groups. Anyone else gets 403 for every username, existing or not (nothing leaks).
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission

VIEW_PROFILES = "recommendations.view_userprofile"
EXPORT_PERSONAL_DATA = "recommendations.export_personal_data"


class _ModelPermission(BasePermission):
    permission = ""

    def has_permission(self, request: Any, view: Any) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.has_perm(self.permission))


class CanViewProfiles(_ModelPermission):
    """The user holds ``recommendations.view_userprofile``."""

    permission = VIEW_PROFILES


class CanExportPersonalData(_ModelPermission):
    """The user holds ``recommendations.export_personal_data``."""

    permission = EXPORT_PERSONAL_DATA
