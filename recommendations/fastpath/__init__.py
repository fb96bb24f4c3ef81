"""The recommendation API's optional fast path (``RECOMMENDER["FAST_PATH_ENABLED"]``, off by default).

``FastRecommendationsMiddleware`` answers a logged-in shopper's plain ``GET /api/recommendations/``
without the middleware stack, through Django's and DRF's public APIs only:

- ``config``: whether the settings allow an exact answer at all;
- ``gate``: the request's shopper, checked as the full stack checks it on every request (the
  configured ``SESSION_ENGINE``'s ``SessionStore``, the user through the session's backend with
  the session auth hash compared in constant time, the view's permissions and throttles);
- ``replay``: the stored response of an unchanged list (one Redis script);
- ``realtime``: a new list through the view's own service call when there is nothing to replay.

What it cannot answer exactly goes on to the full stack, which stays the reference behaviour.
"""
