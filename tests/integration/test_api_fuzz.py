"""Schema-driven fuzz of the whole HTTP API (schemathesis over the WSGI app, bounded examples)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from shop.wsgi import application

# What the issue asks: no 5xx, and every body of a documented status matches its schema.
# Left out: "negative data must be rejected" (the events endpoint deliberately answers 202 with
# per-event rejections) and "every status is documented" (drf-spectacular lists no 4xx unless
# a view declares them; the views' 400/403/404 answers are reported to their owners).
CHECKS = [not_a_server_error, content_type_conformance, response_schema_conformance]

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

# Loaded when the module is collected: the schema view needs no database.
schema = schemathesis.openapi.from_wsgi("/api/schema/", application)


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_500_and_every_response_matches_the_schema(case, shop_items):
    # given: a generated request (as an anonymous browser, with a real user agent)
    case.headers = {**(case.headers or {}), "User-Agent": "Mozilla/5.0 (fuzz)"}

    # when / then: no 5xx, status codes, content types and bodies conform to the schema
    case.call_and_validate(checks=CHECKS)
