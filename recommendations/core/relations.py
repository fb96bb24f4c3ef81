"""Similar items beyond co-visitation: the nearest items in the network's embedding.

Co-visitation knows the items shoppers viewed together; a rarely viewed item has few of them.
The network's item embeddings place every item, so they fill the list up, ranked below the
co-visited ones (half the weakest co-visitation score at most).
"""

from __future__ import annotations

import numpy as np

from recommendations.core.dataset import ItemIndex


def fill_from_embeddings(
    out: list[tuple[str, float]], embeddings: np.ndarray, index: ItemIndex, item: str, n: int
) -> None:
    """Append to ``out`` (the co-visited items of ``item``) its nearest items until it holds ``n``.

    Parameters
    ----------
    out : list of (item key, score)
        Best first; the appended items score below its weakest one.
    embeddings : ndarray of shape (n_items, dim)
        Row ``j`` is the embedding of ``index.item_ids[j]``.
    item : str
        A key of ``index``.
    """
    j = index.index[str(item)]
    norm = embeddings / (np.linalg.norm(embeddings, axis=1, keepdims=True) + 1e-12)
    sims = norm @ norm[j - 1]
    taken = {k for k, _ in out} | {item}
    scale = min((s for _, s in out), default=1.0)
    for c in np.argsort(-sims, kind="stable"):
        key = index.item_ids[c]
        if key in taken:
            continue
        out.append((key, float(max(sims[c], 0.0) * scale * 0.5)))
        if len(out) >= n:
            break
