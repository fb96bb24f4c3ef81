"""recommendations.core must import without Django configured and without importing Django."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_core_imports_without_django():
    # given: a clean interpreter with no settings module
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    code = (
        "import sys, recommendations.core, recommendations.core.recommender, "
        "recommendations.core.evaluation, "
        "recommendations.core.candidates, recommendations.core.complements, recommendations.core.baselines; "
        "print('django' in sys.modules)"
    )

    # when
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[3],
        timeout=120,
    )

    # then
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
