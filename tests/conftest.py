"""Shared fixtures: the data directory, and seeded random generators."""

from __future__ import annotations

import os
from pathlib import Path

# pytest -n 2 runs two workers on two cores: each OpenMP pool (scikit-learn's boosted trees)
# must use one thread, or spinning threads of the two workers slow each other tenfold.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

# Tests read the real public datasets from ../shared/data unless told otherwise; tests that
# need them fail (not skip) when they are missing, so CI cannot pass without the data.
os.environ.setdefault("ML4MS_DATA_DIR", str(REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = Path(os.environ["ML4MS_DATA_DIR"])
    assert (path / "mlearn").is_dir(), f"the shared datasets are missing: {path} (set ML4MS_DATA_DIR)"
    return path


@pytest.fixture(autouse=True)
def _seeded() -> None:
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)
