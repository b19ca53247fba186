"""Scoped torch thread counts, for estimators that take ``n_threads``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from .errors import ConfigError


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` torch intra-op threads, then restore the previous setting (None: leave it).

    Small networks (property nets, autoencoders) work on small tensors, for which a thread
    pool mostly adds synchronisation: on a busy machine two threads can be ten times slower
    than one.
    """
    if n is None:
        yield
        return
    if int(n) < 1:
        raise ConfigError(f"n_threads must be >= 1 or None, got {n}")
    previous = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(previous)
