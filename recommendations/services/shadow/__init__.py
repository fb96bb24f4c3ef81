"""Shadow models: a candidate version scores a sampled share of live lists, never shown.

- ``sampling``: on the request path, which lists are sampled (one dictionary lookup and a random
  draw per list) and the task enqueued after the response;
- ``scoring``: the task's work: the candidate's list for the same shopper, stored beside the
  served one; failures counted on the run;
- ``results``: what staff see: requests scored, overlap at 10, and where the clicked items were
  in each list.
"""
