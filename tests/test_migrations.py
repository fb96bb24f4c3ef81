"""Plugin hygiene: every model change ships with its migration."""

from io import StringIO

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_no_model_change_without_migration():
    # given the models as they are / when makemigrations runs in check mode
    out = StringIO()
    try:
        call_command("makemigrations", "--check", "--dry-run", stdout=out, stderr=out)
    except SystemExit as exc:  # --check exits non-zero when migrations are missing
        pytest.fail(f"missing migrations:\n{out.getvalue()} (exit {exc.code})")
    # then nothing is pending
    assert "No changes detected" in out.getvalue()
