"""The security tests run twice: with the API's fast path on and off (``RECOMMENDER["FAST_PATH_ENABLED"]``).

Use it with ``from tests.fastpath_modes import fast_path_mode  # noqa: F401`` and
``pytestmark = pytest.mark.usefixtures("fast_path_mode")`` (or the fixture as an argument).
"""

import pytest


@pytest.fixture(params=["fast-path-on", "fast-path-off"])
def fast_path_mode(request, settings) -> bool:
    """True with the fast path enabled; the answers must be the same either way."""
    enabled = request.param == "fast-path-on"
    settings.RECOMMENDER = {**settings.RECOMMENDER, "FAST_PATH_ENABLED": enabled}
    return enabled
