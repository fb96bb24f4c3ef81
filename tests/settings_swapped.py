"""The suite's settings with the item model swapped to ``testapp.Book`` (string primary key).

Proves that the plugin never assumes ``shop.Product`` or an integer primary key.
"""

from tests.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.testapp"]  # noqa: F405
RECOMMENDER_ITEM_MODEL = "testapp.Book"
RECOMMENDER = {"ITEM_KEY_FIELD": "isbn"}
