"""The Redis cache backend (portal.redis_cache) against the real Redis of REDIS_URL."""

from __future__ import annotations

import os
import threading

import pytest
from django.core.cache import caches

from portal.redis_cache import RedisCache


@pytest.fixture
def redis_cache(settings):
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip("needs REDIS_URL: set by `make test` in CI")
    settings.CACHES = {
        "default": {"BACKEND": "portal.redis_cache.RedisCache", "LOCATION": url.rsplit("/", 1)[0] + "/8"}
    }
    cache = caches["default"]
    cache.clear()
    yield cache
    cache.clear()


def test_it_is_a_working_cache(redis_cache):
    assert isinstance(redis_cache, RedisCache)
    redis_cache.set("a", {"n": 1}, 60)
    assert redis_cache.add("a", 2) is False
    assert redis_cache.add("b", 2) is True
    assert redis_cache.incr("b") == 3
    assert redis_cache.get_many(["a", "b", "c"]) == {"a": {"n": 1}, "b": 3}
    redis_cache.delete_many(["a", "b"])
    assert redis_cache.get("a") is None


def test_one_client_serves_every_call_and_thread(redis_cache):
    clients = []

    def work(index: int) -> None:
        redis_cache.set(f"k{index}", index, 60)
        assert redis_cache.get(f"k{index}") == index
        clients.append(redis_cache._cache.get_client())

    threads = [threading.Thread(target=work, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(clients) == 8
    assert len({id(client) for client in clients}) == 1
