"""One entry point for "some structures": a file path or a public-dataset spec.

A spec is ``NAME[:OPTION...]`` with the options in a fixed order per dataset, e.g.
``mlearn:Cu:test`` for ``datasets.load("mlearn", element="Cu", split="test")``. An
existing file always wins over a spec of the same name.
"""

from __future__ import annotations

import os
from pathlib import Path

from ase import Atoms

from .datasets import DATASETS

#: Datasets of structures, with the positional meaning of the parts after the name.
SPEC_OPTIONS: dict[str, tuple[str, ...]] = {
    name: DATASETS[name].options for name in ("mlearn", "perov_5", "aspirin_gfn2")
}


def parse_spec(spec: str) -> tuple[str, dict[str, str]] | None:
    """``("mlearn", {"element": "Cu", "split": "test"})`` for ``"mlearn:Cu:test"``; None if not a spec."""
    name, *parts = spec.split(":")
    if name not in SPEC_OPTIONS or Path(spec).exists():
        return None
    names = SPEC_OPTIONS[name]
    if len(parts) > len(names):
        raise ValueError(f"dataset spec {spec!r} has too many parts; expected {':'.join([name, *names])}")
    return name, dict(zip(names, parts))


def read_structures(spec: str | os.PathLike, **read_options) -> list[Atoms]:
    """Structures from a file (any format :func:`ml4ms.data.read` takes) or a dataset spec.

    A suffix ``@INDEX`` (ASE's syntax: ``frames.extxyz@:800``, ``aspirin_gfn2@800:``)
    selects structures, as ``index=`` does; a file whose name really contains ``@`` wins.
    """
    text = str(spec)
    if "@" in text and not Path(text).exists() and "index" not in read_options:
        text, _, index = text.rpartition("@")
        return read_structures(text, index=index, **read_options)
    parsed = parse_spec(text)
    if parsed is not None:
        from .datasets import load
        from .io import parse_index

        name, options = parsed
        renamed = [k for k in ("energy_key", "forces_key", "stress_key")
                   if read_options.get(k, k.removesuffix("_key")) != k.removesuffix("_key")]
        if renamed:
            raise ValueError(f"{spec}: a public dataset has fixed label names; {', '.join(renamed)} "
                             "applies to files only")
        images = load(name, **options)
        index = parse_index(read_options.get("index", ":"))
        return images[index] if isinstance(index, slice) else [images[index]]
    from .io import read

    return read(spec, **read_options)
