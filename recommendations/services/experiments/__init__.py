"""Online experiments (A/B tests) per placement: plans, assignment, results, guardrail, promotion.

- ``plans``: the running experiments, kept per process and re-read every few seconds;
- ``assignment``: which arm a shopper is in (a salted hash, stored at first exposure, carried
  over to the user at login);
- ``validation``: what staff may save (shares, overlaps, arms);
- ``attribution`` and ``results``: per-shopper outcomes of the lists each arm served, with the
  always-valid intervals of ``recommendations.core.sequential``;
- ``lifecycle``: the guardrail that stops an arm, final results kept at the end, and "promote the
  winner".

Serving asks ``services.serving.experiment_arms`` for a list's arm; docs/experiments.md explains
the whole for staff and developers.
"""
