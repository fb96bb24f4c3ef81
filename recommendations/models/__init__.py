"""Persisted state of the recommender, one module per concern.

- ``registry``: TrainingRun, ModelVersion (the behaviour network's versions).
- ``serving``: precomputed lists, impressions, item relations, "not interested" marks.
- ``profiles``: Segment, UserProfile, ProfileRun; ``profile_chunks``: the chunks of a rebuild.
- ``privacy``: erasure audit records.
- ``experiments``: Experiment, ExperimentArm, ExperimentAssignment (online A/B tests).
- ``merchandising``: MerchandisingRule (staff pins, boosts, buries and exclusions).
- ``refreshes``: runs of the list refresh and their chunks (progress).
- ``shadow``: ShadowRun, ShadowScore (a candidate version scoring live requests unseen).

Items are referenced by their public key (a string), never by a foreign key: the item
model is swappable and its primary key may be anything.
"""

from recommendations.models.experiments import *  # noqa: F403
from recommendations.models.merchandising import *  # noqa: F403
from recommendations.models.privacy import *  # noqa: F403
from recommendations.models.profile_chunks import *  # noqa: F403
from recommendations.models.profiles import *  # noqa: F403
from recommendations.models.refreshes import *  # noqa: F403
from recommendations.models.registry import *  # noqa: F403
from recommendations.models.serving import *  # noqa: F403
from recommendations.models.shadow import *  # noqa: F403
