"""Class specificity of single-image masks (paper Table 3, Fig. 8), as one study.

:func:`class_specificity_study` runs what chapter 7 reports: the linear probe of
:func:`fmask.analysis.masks.class_specificity` on the centred masks with true labels and with one fixed random
permutation of them (the original redrew random labels on every access; see the chapter), repeated over
re-drawn train/test splits for a spread, the seeded UMAP embeddings of the masks and of the probe's outputs
(what the original fed UMAP), and the silhouette of the true classes in each embedding. Too few masks for a
probe (tiny profiles) give a study with ``table3 == {}`` and a ``reason``, not an exception.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from fmask.analysis import masks as analysis

__all__ = ["ClassSpecificity", "class_specificity_study", "EMBEDDING_TITLES"]

#: embedding key -> panel title
EMBEDDING_TITLES = {
    "masks": "masks",
    "true_labels": "classifier outputs (true labels)",
    "random_labels": "classifier outputs (permuted labels)",
}


@dataclass
class ClassSpecificity:
    """Outcome of :func:`class_specificity_study`; accuracies are fractions in [0, 1].

    ``table3``: ``{"true_labels"|"random_labels": {"train", "test", "n_train", "n_test"}}`` (empty when no probe was possible);
    ``test_repeats``: per labelling, the test accuracies over ``repeats`` splits; ``chance``: share of the
    most frequent class in the test split (NaN without probe; the paper's balanced five classes give
    1/5, recorded as ``chance_uniform``); ``null_train_accuracy``/``null_test_accuracy``: the probe on
    ``null_permutations`` independent label permutations (:func:`fmask.analysis.masks.permutation_null`; empty
    when none were asked for or no probe was possible); ``embeddings``: key of
    :data:`EMBEDDING_TITLES` -> (N, 2); ``silhouette``: same keys -> score (NaN when undefined);
    ``reason``: why the probe or UMAP was skipped (None otherwise).
    """

    labels: np.ndarray
    train_fraction: float
    table3: dict[str, dict[str, float]] = field(default_factory=dict)
    test_repeats: dict[str, list[float]] = field(default_factory=dict)
    chance: float = float("nan")
    n_train: int = 0
    n_test: int = 0
    n_classes: int = 0
    null_train_accuracy: list[float] = field(default_factory=list)
    null_test_accuracy: list[float] = field(default_factory=list)
    permutation_changed: float | None = None
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)
    silhouette: dict[str, float] = field(default_factory=dict)
    reason: str | None = None

    def summary(self) -> dict[str, Any]:
        """JSON-ready values for the ``class_specificity`` result file."""
        return {
            "table3": self.table3,
            "chance": self.chance,
            "chance_majority": self.chance,
            "chance_uniform": 1.0 / self.n_classes if self.n_classes >= 2 else None,
            "n_classes": self.n_classes,
            "n_masks": int(self.labels.size),
            "n_train": self.n_train,
            "n_test": self.n_test,
            "null_train_accuracy": self.null_train_accuracy,
            "null_test_accuracy": self.null_test_accuracy,
            "null_permutations": len(self.null_test_accuracy),
            "train_fraction": self.train_fraction,
            "silhouette": self.silhouette,
            "test_repeats": self.test_repeats or None,
            "permutation_changed": self.permutation_changed,
            "reason": self.reason,
        }


def class_specificity_study(
    masks: Tensor,
    labels: Tensor | np.ndarray,
    *,
    seed: int,
    train_fraction: float = 0.85,
    C: float = 1.0,
    repeats: int = 1,
    umap_neighbors: int = 20,
    null_permutations: int = 0,
) -> ClassSpecificity:
    """Probe, repeated splits, UMAP and silhouettes for masks (N, C, H, W) with labels (N,).

    Deterministic for a given ``seed``: the permutation and the first split use ``seed``, the further
    splits ``seed + 1 ... seed + repeats - 1`` (same permuted labels), UMAP is seeded and single-threaded.
    ``null_permutations`` (B): label permutations for the probe's permutation null, on the first split
    (:func:`fmask.analysis.masks.permutation_null`; 0 = none). ``table3`` rows also hold the split sizes
    ``n_train``/``n_test``.
    """
    if int(null_permutations) < 0:
        raise ValueError(f"null_permutations must be >= 0; got {null_permutations}")
    if not 0.0 < float(train_fraction) < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1); got {train_fraction}")
    if int(repeats) < 1:
        raise ValueError(f"repeats must be >= 1; got {repeats}")
    y = np.asarray(torch.as_tensor(labels).cpu().numpy()).reshape(-1)
    if masks.shape[0] != y.size:
        raise ValueError(f"{masks.shape[0]} masks but {y.size} labels")
    out = ClassSpecificity(labels=y, train_fraction=float(train_fraction))
    n_classes = np.unique(y).size
    out.n_classes = int(n_classes)
    n_train = int(y.size * train_fraction)
    res = None
    if n_classes >= 2 and 2 <= n_train < y.size:
        try:
            res = analysis.class_specificity(masks, y, seed=seed, train_fraction=train_fraction, C=C)
        except ValueError as exc:  # e.g. a training split with a single class
            out.reason = f"linear probe not possible: {exc}"
    else:
        out.reason = f"{y.size} masks of {n_classes} class(es): too few for a linear probe"
    if res is not None:
        out.table3 = {k: {"train": v.train_accuracy, "test": v.test_accuracy} for k, v in res.items()}
        reps = [res] + [analysis.class_specificity(masks, y, seed=seed, train_fraction=train_fraction, C=C,
                                                   split_seed=seed + i) for i in range(1, int(repeats))]
        out.test_repeats = {k: [float(r[k].test_accuracy) for r in reps] for k in res}
        out.chance = float(res["true_labels"].chance)
        out.n_test = int(len(res["true_labels"].test_idx))
        out.n_train = int(len(res["true_labels"].train_idx))
        out.table3 = {k: {**v, "n_train": out.n_train, "n_test": out.n_test} for k, v in out.table3.items()}
        if int(null_permutations) > 0:
            null = analysis.permutation_null(analysis.mask_features(masks), y, seed=seed,
                                             n_permutations=int(null_permutations), train_fraction=train_fraction,
                                             C=C)
            out.null_train_accuracy = [float(v) for v in null["train"]]
            out.null_test_accuracy = [float(v) for v in null["test"]]
        out.permutation_changed = float(np.mean(res["random_labels"].labels != y))
    if y.size >= 4:
        out.embeddings["masks"] = analysis.umap_embedding(analysis.mask_features(masks), seed=seed,
                                                          n_neighbors=umap_neighbors)
        if res is not None:
            for k in ("true_labels", "random_labels"):
                out.embeddings[k] = analysis.umap_embedding(res[k].outputs, seed=seed, n_neighbors=umap_neighbors)
    elif out.reason is None:
        out.reason = "too few masks for UMAP"
    from sklearn.metrics import silhouette_score

    ok = 1 < n_classes < y.size
    out.silhouette = {k: float(silhouette_score(e, y)) if ok else float("nan") for k, e in out.embeddings.items()}
    return out
