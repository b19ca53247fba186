"""Choice of the sparse (representative) environments of a sparse Gaussian process.

A sparse GP expands the atomic energy on kernels centred at M environments chosen
among the N of the training set (M << N). The choice decides how well the M cover the
data:

- ``"fps"``: farthest-point sampling in the kernel's own distance (cosine distance of
  the normalised descriptors): deterministic, spreads the points evenly, never picks a
  duplicate (the perfect-crystal environments repeated thousands of times in a data set);
- ``"cur"``: rows sampled in proportion to their statistical leverage in the
  descriptor matrix (the CUR decomposition GAP uses), seeded;
- ``"random"``: uniform, seeded.
"""

from __future__ import annotations

import numpy as np
import torch

METHODS = ("fps", "cur", "random")


def select_sparse_points(features: torch.Tensor, n_sparse: int, method: str = "fps",
                         seed: int = 0) -> torch.Tensor:
    """Indices of ``n_sparse`` rows of ``features`` (N, F) chosen by ``method``.

    Returns all rows when ``n_sparse >= N``. Rows are compared after normalisation to
    unit length (the kernel compares directions).

    Returns
    -------
    Tensor of shape (min(n_sparse, N),), int64, in the order chosen.
    """
    if method not in METHODS:
        raise ValueError(f"sparse_method must be one of {METHODS}, got {method!r}")
    n = features.shape[0]
    if n_sparse < 1:
        raise ValueError(f"n_sparse must be >= 1, got {n_sparse}")
    if n_sparse >= n:
        return torch.arange(n)
    x = features.double()
    x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-300)
    generator = np.random.default_rng(seed)
    if method == "random":
        return torch.as_tensor(np.sort(generator.choice(n, n_sparse, replace=False)))
    if method == "cur":
        u, s, _ = torch.linalg.svd(x, full_matrices=False)
        rank = int((s > s[0] * 1e-10).sum())
        k = min(n_sparse, rank)
        leverage = (u[:, :k] ** 2).sum(1).numpy()
        p = leverage / leverage.sum()
        # duplicates have equal leverage; drawing without replacement still may take
        # several copies of a frequent environment, as GAP's CUR does
        nonzero = int((p > 0).sum())
        if nonzero >= n_sparse:
            return torch.as_tensor(np.sort(generator.choice(n, n_sparse, replace=False, p=p)))
        return torch.as_tensor(np.sort(generator.choice(n, n_sparse, replace=False)))
    # farthest-point sampling, starting from the environment farthest from the mean
    mean = x.mean(0)
    first = int(torch.argmin(x @ mean / mean.norm().clamp_min(1e-300)))
    chosen = [first]
    distance = 1.0 - x @ x[first]
    for _ in range(n_sparse - 1):
        nxt = int(torch.argmax(distance))
        chosen.append(nxt)
        distance = torch.minimum(distance, 1.0 - x @ x[nxt])
    return torch.as_tensor(chosen)
