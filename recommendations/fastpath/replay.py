"""Replaying a stored response: a list unchanged since it was served is answered by one Redis script.

A response is stored with what its list was built from (``services.serving.types.ReusableList``):
the shopper's latest-event marker, fingerprints of the precomputed list and "not interested"
marks it was assembled from, and the language its reasons are worded in. The script serves it
only while all of these are unchanged, with a new recommendation id cut in, and queues its
impression in the same round trip. It expires with the list itself (``services.serving.reuse``).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.http import HttpResponse
from django.utils import timezone

from recommendations.services import personal_keys
from recommendations.services.serving import impressions
from recommendations.services.serving.freshness import marker_key, raise_markers
from recommendations.services.serving.state import not_interested_cache_key, precomputed_cache_key
from recommendations.services.serving.types import ReusableList

# KEYS marker, stored response, precomputed list, marks, impression queue; ARGV the impression
# row's start, the request's language. Returns {stored response or false, queue length}; the
# impression is queued only when the stored response is served.
# Stored: language \n latest \n sha1(precomputed) \n sha1(marks) \n impression fields \n head \n body.
_REPLAY_LUA = r"""
local stored = redis.call('GET', KEYS[2])
if not stored then return {false, 0} end
local marker = redis.call('GET', KEYS[1])
local precomputed = redis.call('GET', KEYS[3])
local marks = redis.call('GET', KEYS[4])
if (not marker) or (not precomputed) or (not marks) then return {false, 0} end
local p0 = string.find(stored, '\n', 1, true)
local p1 = string.find(stored, '\n', p0 + 1, true)
local p2 = string.find(stored, '\n', p1 + 1, true)
local p3 = string.find(stored, '\n', p2 + 1, true)
local p4 = string.find(stored, '\n', p3 + 1, true)
if string.sub(stored, 1, p0 - 1) ~= ARGV[2]
  or string.sub(stored, p0 + 1, p1 - 1) ~= marker
  or string.sub(stored, p1 + 1, p2 - 1) ~= redis.sha1hex(precomputed)
  or string.sub(stored, p2 + 1, p3 - 1) ~= redis.sha1hex(marks) then
  return {false, 0}
end
local queued = redis.call('RPUSH', KEYS[5], ARGV[1] .. string.sub(stored, p3 + 1, p4 - 1) .. '}')
return {stored, queued}
"""
_scripts: dict[int, Any] = {}


def list_key(user_id: Any) -> str:
    """The cache key of the user's replayable response."""
    return impressions.cache_key(personal_keys.REPLAY.key(user_id))


def _script(client: Any) -> Any:
    """The replay script registered with this client (EVALSHA, loaded again if Redis lost it)."""
    script = _scripts.get(id(client))
    if script is None:
        script = _scripts[id(client)] = client.register_script(_REPLAY_LUA)
    return script


def replay(client: Any, user_id: Any, visitor_id: str, language: str) -> HttpResponse | None:
    """The user's stored response with a new recommendation id, or None when it no longer holds."""
    recommendation_id = str(uuid.uuid4())
    row_start = json.dumps(
        {
            "recommendation_id": recommendation_id,
            "user_id": user_id,
            "visitor_id": visitor_id[:64],
            "created_at": timezone.now().isoformat(),
        }
    )[:-1]
    stored, queued = _script(client)(
        keys=[
            impressions.cache_key(marker_key(user_id)),
            list_key(user_id),
            impressions.cache_key(precomputed_cache_key(user_id)),
            impressions.cache_key(not_interested_cache_key(user_id, "")),
            impressions.queue_key(),
        ],
        args=[row_start + ",", language],
    )
    if not stored:
        return None
    _language, _latest, _precomputed, _marks, _impression, head, body = stored.split(b"\n", 6)
    entry = json.loads(head)
    cut = entry["cut"]
    response = HttpResponse(body[:cut] + recommendation_id.encode() + body[cut:], status=entry["status"])
    for name, value in entry["headers"]:
        response.headers[name] = value
    impressions.rows_queued(queued)
    return response


def store(pipe: Any, client: Any, response: HttpResponse, reusable: ReusableList) -> None:
    """Queue on ``pipe`` the response of a list that may be replayed (and raise the user's marker)."""
    body = bytes(response.content)
    recommendation_id = reusable.result.recommendation_id.encode()
    if body.count(recommendation_id) != 1 or "\n" in reusable.language:
        return
    cut = body.index(recommendation_id)
    head = {"status": response.status_code, "headers": list(response.items()), "cut": cut}
    impression = json.dumps(impressions.list_fields(reusable.result), separators=(",", ":"))[1:-1]
    stored = b"\n".join(
        [
            reusable.language.encode(),
            reusable.latest.encode(),
            *(part.encode() for part in reusable.basis),
            impression.encode(),
            json.dumps(head, separators=(",", ":")).encode(),
            body[:cut] + body[cut + len(recommendation_id) :],
        ]
    )
    pipe.set(list_key(reusable.user_id), stored, ex=max(1, reusable.seconds))
    raise_markers(client, {reusable.user_id: reusable.latest}, pipeline=pipe)
