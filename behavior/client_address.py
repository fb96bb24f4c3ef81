"""The client's network address, as far as this server can trust it (throttling, logs).

``RECOMMENDER["TRUSTED_PROXY_COUNT"]`` says how many reverse proxies that this project runs
stand in front of Django, each appending the address of its peer to ``X-Forwarded-For``:

- ``0`` (the default, no proxy): ``REMOTE_ADDR``. ``X-Forwarded-For`` is ignored: a client
  writes whatever it likes there, and keying a throttle on it lets a new value per request
  escape every limit;
- ``N``: the N-th address from the right of ``X-Forwarded-For``, the one the outermost of
  the N proxies saw. Addresses further left were written by the client and are never read.

A header with fewer than N addresses, or a value that is not an IP address, means the
request did not come through the proxies as configured: ``REMOTE_ADDR`` is used then.
Set the count to exactly the number of proxies: one too many trusts a client-written value,
one too few puts every client behind one proxy address (one shared throttle).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from behavior.conf import behavior_settings

__all__ = ["client_address"]


def client_address(request: Any) -> str:
    """The address to throttle and log ``request`` by (a Django or DRF request)."""
    meta = request.META
    remote = str(meta.get("REMOTE_ADDR") or "")
    count = int(behavior_settings.TRUSTED_PROXY_COUNT or 0)
    if count <= 0:
        return remote
    forwarded = [part.strip() for part in str(meta.get("HTTP_X_FORWARDED_FOR", "")).split(",")]
    forwarded = [part for part in forwarded if part]
    if len(forwarded) < count:
        return remote
    candidate = forwarded[-count]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return remote
