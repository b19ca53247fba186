"""Choice of sparse environments."""

from __future__ import annotations

import pytest
import torch

from ml4ms.models.sparse import select_sparse_points


def _features():
    generator = torch.Generator().manual_seed(0)
    base = torch.rand(40, 6, dtype=torch.float64, generator=generator) + 0.05
    return torch.cat([base, base[:1].repeat(200, 1)])  # one environment repeated 200 times


def test_farthest_point_sampling_never_picks_a_duplicate_and_is_deterministic():
    x = _features()
    chosen = select_sparse_points(x, 30, "fps")
    assert len(set(chosen.tolist())) == 30
    assert sum(int(k) >= 40 or int(k) == 0 for k in chosen) <= 1  # the repeated environment at most once
    assert torch.equal(chosen, select_sparse_points(x, 30, "fps"))


@pytest.mark.parametrize("method", ["cur", "random"])
def test_seeded_methods_are_reproducible_and_distinct_rows(method):
    x = _features()
    a, b = select_sparse_points(x, 25, method, seed=4), select_sparse_points(x, 25, method, seed=4)
    assert torch.equal(a, b) and len(set(a.tolist())) == 25
    assert not torch.equal(a, select_sparse_points(x, 25, method, seed=5))


def test_asking_for_more_points_than_rows_returns_all_and_bad_arguments_are_refused():
    x = _features()[:10]
    assert torch.equal(select_sparse_points(x, 50), torch.arange(10))
    with pytest.raises(ValueError, match="sparse_method"):
        select_sparse_points(x, 3, "kmeans")
    with pytest.raises(ValueError, match="n_sparse"):
        select_sparse_points(x, 0)
