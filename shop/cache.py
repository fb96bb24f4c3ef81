"""Cache backend of the demo: Django's Redis cache without a new client object per operation."""

from __future__ import annotations

from typing import Any

from django.core.cache.backends import redis as django_redis


# django-stubs leaves out the private pool helpers of RedisCacheClient that this subclass calls.
class PooledRedisCacheClient(django_redis.RedisCacheClient):
    """Builds one ``redis.Redis`` per connection pool instead of one per cache operation.

    Django's ``get_client`` makes a new ``redis.Redis`` on every call, and its constructor
    (response-callback tables) cost about as much CPU as the round trip itself. A client
    over a shared pool is thread-safe, so keeping it changes nothing else.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        index = self._get_connection_pool_index(write)  # type: ignore[attr-defined]
        client = self._clients.get(index)
        if client is None:
            client = self._client(connection_pool=self._get_connection_pool(write))  # type: ignore[attr-defined]
            self._clients[index] = client
        return client


class RedisCache(django_redis.RedisCache):
    """``django.core.cache.backends.redis.RedisCache`` with :class:`PooledRedisCacheClient`."""

    def __init__(self, server: str, params: dict) -> None:
        super().__init__(server, params)
        self._class = PooledRedisCacheClient
