"""A request read in Chinese leaves Chinese active in the test's thread (LocaleMiddleware
activates it and nothing deactivates it); later tests must start in the default language."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.utils import translation


@pytest.fixture(autouse=True)
def default_language_afterwards() -> Iterator[None]:
    yield
    translation.activate("en")
