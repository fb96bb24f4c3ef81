"""The demo settings are safe by default: debug off, never a guessable or weak secret key."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = (
    "from django.conf import settings; import shop.settings as s;"
    " print(settings.DEBUG, len(settings.SECRET_KEY), s.weak_secret_key(settings.SECRET_KEY))"
)


def _settings(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """Load shop.settings in a fresh process with only ``env`` deciding DEBUG and SECRET_KEY."""
    base = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY"}}
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {SCRIPT}"],
        cwd=tmp_path,
        env={**base, "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": "shop.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_debug_is_off_and_a_weak_key_is_refused_while_no_key_gets_a_random_local_one(tmp_path):
    # when
    nothing = _settings(tmp_path)
    weak = _settings(tmp_path, SECRET_KEY="x" * 60)
    short = _settings(tmp_path, SECRET_KEY="abcdefghij")
    insecure = _settings(tmp_path, SECRET_KEY="django-insecure-" + secrets.token_urlsafe(50))
    strong = _settings(tmp_path, SECRET_KEY=secrets.token_urlsafe(50))
    demo = _settings(tmp_path, DEBUG="1")

    # then: without a key, the checkout's commands run on a strong random key kept beside
    # manage.py (a deployment must name one: the Docker entrypoint refuses to start without it)
    assert nothing.returncode == 0 and nothing.stdout.split()[0::2] == ["False", "False"]
    for refused in (weak, short, insecure):
        assert refused.returncode != 0 and "SECRET_KEY is too weak" in refused.stderr
    assert strong.returncode == 0 and strong.stdout.split() == ["False", "67", "False"]
    assert demo.returncode == 0 and demo.stdout.split()[0] == "True"


def test_the_demo_key_is_random_and_kept(tmp_path):
    # given: the demo's key file
    import shop.settings as demo_settings

    path = tmp_path / ".demo-secret-key"

    # when
    first = demo_settings.demo_secret_key(path)
    again = demo_settings.demo_secret_key(path)
    path.unlink()
    other = demo_settings.demo_secret_key(path)

    # then: strong, the same on every start, a new one for a new checkout, owner-only
    assert not demo_settings.weak_secret_key(first)
    assert again == first != other
    assert path.stat().st_mode & 0o077 == 0
