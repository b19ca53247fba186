"""Running batches of simulations: in-process, or on a Dask cluster (local or remote).

Each simulation draws its random numbers from its own generator, seeded by
``SeedSequence(entropy, spawn_key=key)`` with a key that names the generation and the
simulation's index. Chunks only group simulations for transport, so the results do not
depend on the chunk size, the number of workers or the order in which chunks finish.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError


@dataclass
class Payload:
    """What every chunk needs besides its own parameters: sent to a cluster once."""

    simulator: Callable
    names: list[str]
    entropy: int
    n_stats: int
    param_format: str = "dict"


def simulate_chunk(payload: Payload, thetas: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, list]:
    """Run the simulator on each row of ``thetas`` ``(b, d)``, simulation ``j`` with the seed
    key ``keys[j]``; returns the statistics ``(b, k)`` (NaN rows for failures) and the
    failures as ``[(row, message, wrong_length)]``."""
    out = np.full((len(thetas), payload.n_stats), np.nan)
    failures: list[tuple[int, str, bool]] = []
    for j, (theta, key) in enumerate(zip(thetas, keys)):
        rng = np.random.default_rng(np.random.SeedSequence(payload.entropy, spawn_key=tuple(int(k) for k in key)))
        params: Any = dict(zip(payload.names, map(float, theta))) if payload.param_format == "dict" \
            else np.array(theta, dtype=float)
        try:
            value = np.asarray(payload.simulator(params, rng), dtype=float).ravel()
        except Exception as exc:  # a failing simulation is recorded and skipped, never fatal
            failures.append((j, f"{type(exc).__name__}: {exc}", False))
            continue
        if value.size != payload.n_stats:
            failures.append((j, f"returned {value.size} summary statistics, expected {payload.n_stats} "
                                "(the length of the observed data)", True))
        elif not np.isfinite(value).all():
            bad = np.flatnonzero(~np.isfinite(value)).tolist()
            failures.append((j, f"returned non-finite summary statistics at positions {bad}", False))
        else:
            out[j] = value
    return out, failures


class Runner:
    """Runs simulation batches serially or through Dask; use as a context manager.

    Parameters
    ----------
    workers
        Number of local Dask workers; ``1`` (default) runs in-process without Dask,
        ``None`` uses one per CPU core.
    scheduler
        Address of an existing Dask scheduler (``"tcp://host:8786"``); overrides ``workers``.
    processes
        Local cluster of processes (default) or of threads (cheap to start; fine for
        simulators that release the GIL).
    chunk_size
        Simulations per Dask task; ``None`` picks about four chunks per worker and batch.
    """

    def __init__(self, workers: int | None = 1, scheduler: str | None = None, processes: bool = True,
                 chunk_size: int | None = None) -> None:
        if workers is not None and (not isinstance(workers, (int, np.integer)) or workers < 1):
            raise ConfigError(f"workers must be a positive integer or None, got {workers!r}")
        if chunk_size is not None and chunk_size < 1:
            raise ConfigError(f"chunk_size must be positive, got {chunk_size}")
        self.workers = workers
        self.scheduler = scheduler
        self.processes = processes
        self.chunk_size = chunk_size
        self.client = None
        self._cluster = None
        self._payload_future = None

    @property
    def serial(self) -> bool:
        return self.scheduler is None and self.workers == 1

    def __enter__(self) -> Runner:
        if self.serial:
            return self
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError:  # pragma: no cover - dask is a dependency
            raise ConfigError("parallel ABC needs dask[distributed] (pip install 'dask[distributed]')") from None
        if self.scheduler is not None:
            try:
                self.client = Client(self.scheduler, timeout="20s")
            except OSError as exc:
                raise ConfigError(f"cannot connect to the Dask scheduler {self.scheduler}: {exc}") from None
        else:
            import os

            n = self.workers or os.cpu_count() or 1
            self._cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=self.processes,
                                         dashboard_address=None, silence_logs=logging.ERROR)
            self.client = Client(self._cluster)
            # Without this the first batch is planned for, and sent to, the workers that
            # happen to be up: often one, which then runs every chunk of it alone.
            self.client.wait_for_workers(n, timeout=120)
        return self

    def __exit__(self, *exc_info) -> None:
        if self.client is not None:
            self.client.close()
        if self._cluster is not None:
            self._cluster.close()
        self.client = self._cluster = self._payload_future = None

    @property
    def n_workers(self) -> int:
        if self.client is None:
            return 1
        return max(1, len(self.client.scheduler_info().get("workers", {})))

    def set_payload(self, payload: Payload) -> None:
        self.payload = payload
        if self.client is not None:
            self._payload_future = self.client.scatter(payload, broadcast=True, hash=False)

    def run(self, thetas: np.ndarray, keys: np.ndarray, progress: Callable[[int], None] | None = None
            ) -> tuple[np.ndarray, list[tuple[int, str, bool]]]:
        """Simulate every row of ``thetas`` ``(n, d)``; returns statistics ``(n, k)`` and failures
        ``[(row, message, wrong_length)]`` in row order."""
        n = len(thetas)
        if n == 0:
            return np.empty((0, self.payload.n_stats)), []
        size = self.chunk_size or max(1, math.ceil(n / (4 * self.n_workers)))
        starts = list(range(0, n, size))
        if self.client is None:
            parts = []
            for start in starts:
                parts.append(simulate_chunk(self.payload, thetas[start:start + size], keys[start:start + size]))
                if progress:
                    progress(len(parts[-1][0]))
        else:
            from dask.distributed import as_completed

            futures = [self.client.submit(simulate_chunk, self._payload_future, thetas[s:s + size], keys[s:s + size],
                                          pure=False) for s in starts]
            index = {f.key: k for k, f in enumerate(futures)}
            parts: list = [None] * len(futures)
            for future in as_completed(futures):
                parts[index[future.key]] = future.result()
                if progress:
                    progress(len(parts[index[future.key]][0]))
        stats = np.concatenate([p[0] for p in parts])
        failures = [(start + j, message, wrong) for start, p in zip(starts, parts) for j, message, wrong in p[1]]
        return stats, failures

