"""The catalogue and order admin pages."""

from __future__ import annotations

import pytest
from django.urls import reverse


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["shop_category", "shop_product", "shop_order", "shop_plantedshopper"])
def test_admin_changelists_render_for_staff(client, staff_user, order_item_factory, name):
    # given an order with one item and a signed-in staff member
    order_item_factory()
    client.force_login(staff_user)
    # when / then each changelist renders
    assert client.get(reverse(f"admin:{name}_changelist"), {"q": "a"}).status_code == 200


@pytest.mark.django_db
def test_order_change_page_shows_its_items_inline(client, staff_user, order_item_factory):
    # given an order line / when staff open its order
    line = order_item_factory()
    client.force_login(staff_user)
    response = client.get(reverse("admin:shop_order_change", args=[line.order.pk]))
    # then the inline lists the product
    assert response.status_code == 200
    assert line.product.name in response.content.decode()


@pytest.mark.django_db
def test_stock_is_editable_from_the_product_list(client, staff_user, product):
    # given staff on the product changelist / when they save a new stock in the list
    client.force_login(staff_user)
    response = client.post(
        reverse("admin:shop_product_changelist"),
        {
            "form-TOTAL_FORMS": "1",
            "form-INITIAL_FORMS": "1",
            "form-0-id": str(product.pk),
            "form-0-stock": "42",
            "form-0-is_active": "on",
            "_save": "Save",
        },
    )
    # then the stock is stored
    product.refresh_from_db()
    assert response.status_code == 302
    assert product.stock == 42
