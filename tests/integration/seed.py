"""The small shop seeded by the integration tests and bench/soak.py (a script for ``manage.py shell -c``)."""

# DRF token of "events-relay", a server-to-server client that may name visitors in events.
RELAY_TOKEN = "5eed" * 10

# Seeds a small shop: 12 products, 15 shoppers with 8 events each (views, carts, purchases).
SEED = """
import random, uuid
from datetime import timedelta
from django.utils import timezone
from django.contrib.auth import get_user_model
from shop.models import Category, Product
from behavior.services.ingest import ingest_events
rng = random.Random(7)
cat = Category.objects.create(name="Things", slug="things")
products = [Product.objects.create(sku=f"P{i:02d}", name=f"Thing {i}", price=10 + i, stock=100, category=cat)
            for i in range(12)]
now = timezone.now()
User = get_user_model()
for u in range(15):
    user = User.objects.create_user(f"shopper{u}", password="pw-secret-123")
    start = rng.randrange(12)
    events = []
    for step in range(8):
        item = products[(start + step + rng.randrange(2)) % 12]
        kind = "purchase" if step % 4 == 3 else "view"
        events.append({"event_type": kind, "item": item.sku, "user_id": user.pk,
                       "occurred_at": (now - timedelta(hours=10 - step, minutes=u)).isoformat()})
    ingest_events(events, trusted=True)
print("seeded", Product.objects.count())
"""
SEED += f"""
from django.contrib.auth.models import Permission
from rest_framework.authtoken.models import Token
relay = User.objects.create_user("events-relay")
relay.user_permissions.add(Permission.objects.get(codename="record_for_visitors"))
Token.objects.create(user=relay, key="{RELAY_TOKEN}")
"""
