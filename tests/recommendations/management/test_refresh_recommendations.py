from io import StringIO

import pytest
from django.core.management import call_command

from recommendations.models import ItemRelation


@pytest.mark.django_db
def test_refresh_command_builds_relations_and_reports_a_missing_model(
    user_factory, product_factory, event_factory
):
    # given two products often viewed together in one session, and no trained model
    shopper = user_factory()
    phone, case = product_factory(), product_factory()
    for session in ("s1", "s2", "s3"):
        event_factory(user=shopper, item=phone, session_id=session)
        event_factory(user=shopper, item=case, session_id=session)
    out = StringIO()
    # when the command runs
    call_command("refresh_recommendations", stdout=out)
    # then relations exist both ways and the missing model is said plainly
    related = set(ItemRelation.objects.values_list("item_key", "related_key"))
    assert (phone.sku, case.sku) in related and (case.sku, phone.sku) in related
    assert "no active model" in out.getvalue()
