"""Class specificity of single-image masks (paper Table 3, Fig. 8): the linear probe, its permutation null, the
UMAP embeddings, and the study that chapter 7 reports.

The parts: :func:`mask_features` (centred, channel-averaged masks as features), :func:`linear_probe` (a seeded
multinomial logistic regression, :class:`ProbeResult`), :func:`class_specificity` (the probe with true labels
and with :func:`fixed_permutation` labels), :func:`permutation_null` (the probe on many label permutations)
and :func:`umap_embedding` (seeded UMAP). Accuracies are fractions in [0, 1]; masks are (N, C, H, W) in
``torch.fft.fft2`` layout.

:func:`class_specificity_study` runs what chapter 7 reports: the linear probe of
:func:`class_specificity` on the centred masks with true labels and with one fixed random
permutation of them (the original redrew random labels on every access; see the chapter), repeated over
re-drawn train/test splits for a spread, the seeded UMAP embeddings of the masks and of the probe's outputs
(what the original fed UMAP), and the silhouette of the true classes in each embedding. Too few masks for a
probe (tiny profiles) give a study with ``table3 == {}`` and a ``reason``, not an exception.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from fmask.analysis.maps import as_4d, centered_mask

__all__ = [
    "fixed_permutation",
    "ProbeResult",
    "mask_features",
    "linear_probe",
    "class_specificity",
    "permutation_null",
    "umap_embedding",
    "ClassSpecificity",
    "class_specificity_study",
    "EMBEDDING_TITLES",
]

def fixed_permutation(labels: Tensor | np.ndarray | Sequence[int], seed: int) -> np.ndarray:
    """A random permutation of ``labels`` that depends only on ``seed`` (the same on every call).

    The original drew a fresh random label on every dataset access, so the "random labels" changed
    from epoch to epoch; a fixed permutation keeps the class balance and is a proper control.
    """
    y = np.asarray(labels).reshape(-1)
    if y.size == 0:
        raise ValueError("labels is empty")
    rng = np.random.default_rng(int(seed))
    return y[rng.permutation(y.size)].copy()


@dataclass
class ProbeResult:
    """Outcome of :func:`linear_probe`; accuracies are fractions in [0, 1].

    ``outputs``: (N, K) decision values of the fitted classifier for *all* N samples (what the original
    fed to UMAP); ``labels``: the (N,) labels it was trained on; ``train_idx``/``test_idx``: the split.
    """

    train_accuracy: float
    test_accuracy: float
    chance: float
    labels: np.ndarray
    outputs: np.ndarray
    train_idx: np.ndarray
    test_idx: np.ndarray
    params: dict = field(default_factory=dict)

    def as_dict(self) -> dict[str, float]:
        """``{"train", "test", "chance"}`` as stored in the ``table3`` result."""
        return {"train": self.train_accuracy, "test": self.test_accuracy, "chance": self.chance}


def mask_features(masks: Tensor) -> np.ndarray:
    """Centred, channel-averaged masks flattened to features: (N, C, H, W) -> (N, H*W) float32 array."""
    m = as_4d(masks, "masks")
    return centered_mask(m).reshape(m.shape[0], -1).numpy().astype(np.float32)


def linear_probe(
    features: np.ndarray | Tensor,
    labels: np.ndarray | Tensor | Sequence[int],
    *,
    seed: int,
    train_fraction: float = 0.85,
    C: float = 1.0,
    max_iter: int = 2000,
) -> ProbeResult:
    """Fit a multinomial logistic regression (a linear layer + softmax) on ``features`` (N, D).

    The split is a seeded random ``train_fraction`` / rest split (stratification is not used so that
    the permuted-label control sees the same kind of split). Deterministic for a given seed.
    """
    from sklearn.linear_model import LogisticRegression

    X = np.asarray(features.detach().cpu().numpy() if isinstance(features, Tensor) else features, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"features must be (N, D); got shape {X.shape}")
    y = np.asarray(labels.cpu().numpy() if isinstance(labels, Tensor) else labels).reshape(-1)
    n = X.shape[0]
    if y.size != n:
        raise ValueError(f"{n} samples but {y.size} labels")
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1); got {train_fraction}")
    n_train = int(n * train_fraction)
    if n_train < 2 or n - n_train < 1:
        raise ValueError(f"too few samples ({n}) for a {train_fraction:.2f} split")
    rng = np.random.default_rng(int(seed))
    perm = rng.permutation(n)
    tr, te = np.sort(perm[:n_train]), np.sort(perm[n_train:])
    if np.unique(y[tr]).size < 2:
        raise ValueError("the training split holds a single class; a classifier cannot be fitted")
    clf = LogisticRegression(C=C, max_iter=max_iter, random_state=int(seed))
    clf.fit(X[tr], y[tr])
    counts = np.bincount(y[te].astype(np.int64)) if y.dtype.kind in "iu" else np.unique(y[te], return_counts=True)[1]
    chance = float(counts.max() / te.size)
    return ProbeResult(
        train_accuracy=float(clf.score(X[tr], y[tr])),
        test_accuracy=float(clf.score(X[te], y[te])),
        chance=chance,
        labels=y.copy(),
        outputs=np.asarray(clf.decision_function(X), dtype=np.float32).reshape(n, -1),
        train_idx=tr,
        test_idx=te,
        params={"seed": int(seed), "train_fraction": train_fraction, "C": C, "max_iter": max_iter},
    )


def class_specificity(
    masks: Tensor,
    labels: Tensor | Sequence[int],
    *,
    seed: int,
    train_fraction: float = 0.85,
    C: float = 1.0,
    split_seed: int | None = None,
) -> dict[str, ProbeResult]:
    """Table 3: the probe on centred masks with true labels and with :func:`fixed_permutation` labels.

    The permutation depends only on ``seed``; the train/test split on ``split_seed`` (default ``seed``),
    so repeating with other ``split_seed`` values re-splits without redrawing the control labels.
    Returns ``{"true_labels": ProbeResult, "random_labels": ProbeResult}`` (same split for both).
    """
    X = mask_features(masks)
    y = np.asarray(torch.as_tensor(labels).cpu().numpy()).reshape(-1)
    s = seed if split_seed is None else split_seed
    return {
        "true_labels": linear_probe(X, y, seed=s, train_fraction=train_fraction, C=C),
        "random_labels": linear_probe(X, fixed_permutation(y, seed), seed=s, train_fraction=train_fraction, C=C),
    }


def _training_span_features(X: np.ndarray, *, seed: int, train_fraction: float) -> np.ndarray:
    """``X`` (N, D) in coordinates of the span of its training rows (the split of :func:`linear_probe` for
    ``seed``): (N, r), r = rank of the training rows <= n_train.

    Exact for the L2-penalised logistic regression of :func:`linear_probe` (representer theorem): the
    optimal weights lie in the span of the training rows, so with an orthonormal basis V of that span,
    ``w = V a`` gives ``X w = (X V) a`` for every row (training and test) and ``|w| = |a|``; the fit on
    ``X V`` has the same decision function. With D = 4,096 mask features and ~100 training masks this makes
    each fit about 40 times cheaper, which is what keeps a permutation null of B >= 200 fits cheap.
    """
    n = X.shape[0]
    n_train = int(n * train_fraction)
    if not 0.0 < train_fraction < 1.0 or n_train < 2 or n - n_train < 1:
        raise ValueError(f"too few samples ({n}) for a {train_fraction} split")
    perm = np.random.default_rng(int(seed)).permutation(n)  # the split of linear_probe
    tr = np.sort(perm[:n_train])
    if n_train >= X.shape[1]:
        return X
    _, s, vt = np.linalg.svd(X[tr], full_matrices=False)
    keep = s > s.max(initial=0.0) * max(X.shape) * np.finfo(np.float64).eps
    return X @ vt[keep].T


def permutation_null(
    features: np.ndarray | Tensor,
    labels: np.ndarray | Tensor | Sequence[int],
    *,
    seed: int,
    n_permutations: int,
    train_fraction: float = 0.85,
    C: float = 1.0,
    max_iter: int = 2000,
) -> dict[str, np.ndarray]:
    """Null distribution of the linear probe: :func:`linear_probe` on ``n_permutations`` (B) independent
    label permutations, each on the same split as the true-label probe (split seed ``seed``).

    Permutation b uses :func:`fixed_permutation` with seed ``seed + 1 + b`` (never ``seed`` itself, which
    is the single permuted-label control of :func:`class_specificity`). Returns
    ``{"train": (B,), "test": (B,)}`` accuracies (float64 fractions); with the true-label test accuracy a
    permutation p-value is ``(1 + #{null >= observed}) / (B + 1)`` (:mod:`fmask.analysis.stats`). The paper's control
    (Sec. 3.2) is one shuffle; B >= 19 shuffles let a p-value reach 0.05 (:data:`fmask.claims.rules.MIN_NULL`).
    Deterministic for given arguments.
    """
    if int(n_permutations) < 1:
        raise ValueError(f"n_permutations must be >= 1; got {n_permutations}")
    X = np.asarray(features.detach().cpu().numpy() if isinstance(features, Tensor) else features, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"features must be (N, D); got shape {X.shape}")
    y = np.asarray(labels.cpu().numpy() if isinstance(labels, Tensor) else labels).reshape(-1)
    Z = _training_span_features(X, seed=seed, train_fraction=train_fraction)
    train, test = np.empty(int(n_permutations)), np.empty(int(n_permutations))
    for b in range(int(n_permutations)):
        r = linear_probe(Z, fixed_permutation(y, int(seed) + 1 + b), seed=seed, train_fraction=train_fraction,
                         C=C, max_iter=max_iter)
        train[b], test[b] = r.train_accuracy, r.test_accuracy
    return {"train": train, "test": test}


def umap_embedding(
    x: np.ndarray | Tensor, *, seed: int, n_neighbors: int = 20, n_components: int = 2, min_dist: float = 0.1
) -> np.ndarray:
    """Seeded UMAP of (N, D) features -> (N, n_components) (``n_jobs=1`` so that it is deterministic).

    ``n_neighbors`` is capped at N - 1 for small sets. The original used ``n_neighbors=20``.
    """
    import warnings

    import umap

    X = np.asarray(x.detach().cpu().numpy() if isinstance(x, Tensor) else x, dtype=np.float32)
    if X.ndim != 2:
        X = X.reshape(X.shape[0], -1)
    if X.shape[0] < 4:
        raise ValueError(f"UMAP needs at least 4 samples; got {X.shape[0]}")
    k = max(2, min(int(n_neighbors), X.shape[0] - 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # n_jobs/random_state notice, small-data spectral warnings
        reducer = umap.UMAP(
            n_components=n_components, n_neighbors=k, min_dist=min_dist, random_state=int(seed), n_jobs=1
        )
        return np.asarray(reducer.fit_transform(X), dtype=np.float32)



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
    ``null_permutations`` independent label permutations (:func:`permutation_null`; empty
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
    (:func:`permutation_null`; 0 = none). ``table3`` rows also hold the split sizes
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
            res = class_specificity(masks, y, seed=seed, train_fraction=train_fraction, C=C)
        except ValueError as exc:  # e.g. a training split with a single class
            out.reason = f"linear probe not possible: {exc}"
    else:
        out.reason = f"{y.size} masks of {n_classes} class(es): too few for a linear probe"
    if res is not None:
        out.table3 = {k: {"train": v.train_accuracy, "test": v.test_accuracy} for k, v in res.items()}
        reps = [res] + [class_specificity(masks, y, seed=seed, train_fraction=train_fraction, C=C,
                                          split_seed=seed + i) for i in range(1, int(repeats))]
        out.test_repeats = {k: [float(r[k].test_accuracy) for r in reps] for k in res}
        out.chance = float(res["true_labels"].chance)
        out.n_test = int(len(res["true_labels"].test_idx))
        out.n_train = int(len(res["true_labels"].train_idx))
        out.table3 = {k: {**v, "n_train": out.n_train, "n_test": out.n_test} for k, v in out.table3.items()}
        if int(null_permutations) > 0:
            null = permutation_null(mask_features(masks), y, seed=seed, n_permutations=int(null_permutations),
                                    train_fraction=train_fraction, C=C)
            out.null_train_accuracy = [float(v) for v in null["train"]]
            out.null_test_accuracy = [float(v) for v in null["test"]]
        out.permutation_changed = float(np.mean(res["random_labels"].labels != y))
    if y.size >= 4:
        out.embeddings["masks"] = umap_embedding(mask_features(masks), seed=seed, n_neighbors=umap_neighbors)
        if res is not None:
            for k in ("true_labels", "random_labels"):
                out.embeddings[k] = umap_embedding(res[k].outputs, seed=seed, n_neighbors=umap_neighbors)
    elif out.reason is None:
        out.reason = "too few masks for UMAP"
    from sklearn.metrics import silhouette_score

    ok = 1 < n_classes < y.size
    out.silhouette = {k: float(silhouette_score(e, y)) if ok else float("nan") for k, e in out.embeddings.items()}
    return out
