"""Cluster quality of the last convolutional block's features (the paper's t-SNE analysis, docs/method.md §7).

Features are the input of the network's flatten layer (the last conv / LC block's output, all K
components of a vectorized network), for the model at initialization (rebuilt from the run's seed)
and after training. Each set goes through PCA (to at most 50 dimensions) and a 2-D t-SNE; on the
embedding, the *ratio* is the mean over classes of the within-class RMS pairwise distance divided by
the RMS pairwise distance of all points (lower: tighter, better separated classes). The
improvement is the ratio at initialization minus the ratio after training.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from gevb.layers.kinds import module_kind
from gevb.models import Network


def block_features(model: Network, x: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """(N, D) float64: the input of ``model``'s flatten layer for each example of x (N, *input_shape)."""
    flatten = [i for i, layer in enumerate(model.layers) if module_kind(layer) == "flatten"]
    if not flatten:
        raise ValueError(f"{model.name} has no convolutional block; cluster-quality needs a conv or lc model")
    with torch.no_grad():
        parts = [
            model.activation_before(x[s : s + batch_size], flatten[0]).flatten(1) for s in range(0, len(x), batch_size)
        ]
    return torch.cat(parts).double().cpu().numpy()


def rms_distance(points: np.ndarray) -> float:
    """RMS distance over all ordered pairs: sqrt(2 * mean squared distance to the centroid)."""
    return float(np.sqrt(2.0 * ((points - points.mean(0)) ** 2).sum(1).mean()))


def cluster_ratio(embedding: np.ndarray, labels: np.ndarray) -> float:
    """Mean over classes of the within-class RMS distance, over the RMS distance of all points."""
    within = [rms_distance(embedding[labels == c]) for c in np.unique(labels)]
    return float(np.mean(within) / rms_distance(embedding))


def embed(features: np.ndarray, seed: int = 0) -> np.ndarray:
    """PCA to min(50, N, D) dimensions, then a 2-D t-SNE: (N, 2). (scikit-learn is imported here, not with
    the module: it takes about a second, which every ``gevb`` command would pay.)"""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    reduced = PCA(n_components=min(50, *features.shape), random_state=seed).fit_transform(features)
    perplexity = min(30.0, (len(features) - 1) / 3)
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(reduced)


def cluster_quality(initial: Network, trained: Network, x: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
    """Embeddings and ratios of both models' features on x; ``labels`` (N,) the classes."""
    y = labels.cpu().numpy()
    result: dict[str, Any] = {"examples": len(x)}
    for name, model in (("initial", initial), ("trained", trained)):
        embedding = embed(block_features(model, x))
        result[name] = {"ratio": cluster_ratio(embedding, y), "embedding": embedding}
    result["improvement"] = result["initial"]["ratio"] - result["trained"]["ratio"]
    return result
