"""The components of the blend and how each one is built from a shopper's recent items.

Written once here because three places build the same components and must agree to the last
bit: the validation search (:func:`recommendations.core.selection.components`), the batch and
single-history scoring kernels (:mod:`recommendations.core.scoring`) and the artefact's
weights (:attr:`BehaviorRecommender.blend_weights_` has one entry per name of
:data:`COMPONENTS`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

#: every component of the blend, in the order the scores are summed
COMPONENTS = ("network", "covisitation", "itemknn", "transitions", "recent", "popularity")
#: the components that are not built from the history's recent items
DENSE_COMPONENTS = ("network", "popularity")
#: popularity weight in every score: breaks ties among items the sources score alike (mostly zeros)
TIE_BREAK = 1e-9


class RecencySpec(NamedTuple):
    """How a sparse component weighs the history: ``decay ** age`` of the newest ``last`` steps.

    ``source`` is the item-to-item matrix the weighted history is multiplied by, or ``None``
    when the weighted history is the component itself (``"recent"``). ``last`` is ``None``
    where the whole encoded history counts (up to the model's sequence length).
    """

    source: str | None
    last: int | None
    decay: float


# Co-visitation looks at a session's worth of recent items; transitions only at the newest few
# (what comes next depends on what was just seen); item-kNN and "recent" at the whole history.
_SPECS: dict[str, RecencySpec] = {
    "covisitation": RecencySpec("covisitation", 20, 0.8),
    "itemknn": RecencySpec("itemknn", None, 1.0),
    "transitions": RecencySpec("transitions", 3, 0.3),
    "recent": RecencySpec(None, None, 0.8),
}


def recency_spec(name: str, max_length: int) -> tuple[str | None, int, float]:
    """``(source, positions considered, decay)`` of the sparse component ``name``.

    Raises
    ------
    ValueError
        For a dense component (``network``, ``popularity``) or an unknown name.
    """
    spec = _SPECS.get(name)
    if spec is None:
        raise ValueError(name)
    return spec.source, max_length if spec.last is None else spec.last, spec.decay


def sparse_specs(names: Sequence[str], max_length: int) -> list[tuple[str, str | None, int, float]]:
    """``(name, source, positions considered, decay)`` of each component of ``names`` built from
    the history's recent items (all but the dense two), in ``names`` order."""
    return [(name, *recency_spec(name, max_length)) for name in names if name not in DENSE_COMPONENTS]
