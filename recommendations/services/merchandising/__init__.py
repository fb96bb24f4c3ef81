"""Merchandising: staff rules that pin, boost, bury or exclude items and categories per placement.

- ``rules``: the rules in force, read once per process and kept until a change (or
  ``MERCHANDISING_CHECK_SECONDS``), as the core's plain ``Rule`` values;
- ``validation``: what staff may save (the admin's refusals, with their reasons).

Serving applies them through ``recommendations.services.serving.merchandising``; the ranking
rule itself is ``recommendations.core.merchandising.arrange``.
"""
