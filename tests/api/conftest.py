"""Fixtures of the recommendations API tests (the serving catalogue)."""

from tests.recommendations.conftest import _fresh_serving_state, active_model, catalogue  # noqa: F401
