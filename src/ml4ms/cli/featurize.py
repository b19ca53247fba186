"""``ml4ms featurize CONFIG_OR_OPTIONS INPUT OUTPUT``: descriptors of structures to a file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

# Descriptor names accepted in the configuration (case-insensitive), with their classes' homes.
DESCRIPTORS = {
    "soap": ("ml4ms.descriptors.soap", "SOAP"),
    "acsf": ("ml4ms.descriptors.acsf", "ACSF"),
    "coulomb_matrix": ("ml4ms.descriptors.matrices", "CoulombMatrix"),
    "sine_matrix": ("ml4ms.descriptors.matrices", "SineMatrix"),
    "composition": ("ml4ms.descriptors.composition", "CompositionFeatures"),
}


def register(commands) -> None:
    parser = commands.add_parser(
        "featurize", help="compute descriptors of structures and write them with their labels",
        description="Compute a descriptor for every structure of INPUT (a file or dataset spec such as "
        "mlearn:Si:test) and write OUTPUT (.npz, or .h5 when h5py is installed) holding the features, "
        "the feature labels, the structure of each row and the energies/forces/stresses present. "
        "CONFIG_OR_OPTIONS is a YAML file or an inline YAML mapping naming the descriptor and its "
        "arguments, e.g. '{descriptor: soap, species: [Si], r_cut: 5, n_max: 8, l_max: 6}'.",
    )
    parser.add_argument("config", metavar="CONFIG_OR_OPTIONS", help="YAML file or inline YAML mapping")
    parser.add_argument("input", metavar="INPUT", help="structures: a file or a dataset spec")
    parser.add_argument("output", metavar="OUTPUT", help="output file (.npz or .h5)")
    parser.add_argument("--pool", choices=("none", "mean", "sum"), default="none",
                        help="for per-atom descriptors: one row per atom (none, default) or pooled per structure")
    parser.add_argument("--n-jobs", type=int, default=1, help="threads (default: 1)")
    parser.add_argument("--energy-key", default="energy", help="name of the energy label (default: energy)")
    parser.set_defaults(func=run)


def descriptor_from_config(config: dict[str, Any]):
    """Build a descriptor from ``{"descriptor": NAME, **arguments}``."""
    import importlib

    from ..errors import ConfigError

    options = dict(config)
    name = str(options.pop("descriptor", "")).lower()
    if name not in DESCRIPTORS:
        raise ConfigError(f"descriptor must be one of {', '.join(DESCRIPTORS)}; got {name or 'nothing'!r}")
    module, cls = DESCRIPTORS[name]
    try:
        return getattr(importlib.import_module(module), cls)(**options)
    except TypeError as exc:
        raise ConfigError(f"{cls}: {exc}") from None


def load_config(text_or_path: str) -> dict[str, Any]:
    """A YAML mapping from a file, or from the text itself."""
    import yaml

    from ..errors import ConfigError

    path = Path(text_or_path)
    source = path.read_text() if path.suffix in (".yaml", ".yml", ".json") and path.is_file() else text_or_path
    try:
        config = yaml.safe_load(source)
    except yaml.YAMLError as exc:
        raise ConfigError(f"the descriptor configuration is not valid YAML: {exc}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"expected a YAML mapping or a .yaml file, got {text_or_path!r}")
    return config


def run(args: argparse.Namespace) -> int:
    from .. import keys
    from ..data.sources import read_structures
    from ..descriptors.featurizer import Featurizer

    descriptor = descriptor_from_config(load_config(args.config))
    images = read_structures(args.input, energy_key=args.energy_key)
    featurizer = Featurizer(descriptor, pool=args.pool, n_jobs=args.n_jobs).fit(images)
    features = featurizer.transform(images)
    n_atoms = np.array([len(a) for a in images])
    per_atom_rows = descriptor.per_atom and args.pool == "none"
    arrays = {
        "features": features,
        "feature_labels": np.asarray(featurizer.get_feature_names_out(), dtype=str),
        "n_atoms": n_atoms,
        "structure_index": np.repeat(np.arange(len(images)), n_atoms) if per_atom_rows else np.arange(len(images)),
        "numbers": np.concatenate([a.numbers for a in images]),
    }
    if all(keys.ENERGY in a.info for a in images):
        arrays["energy"] = np.array([a.info[keys.ENERGY] for a in images])
    if all(keys.FORCES in a.arrays for a in images):
        arrays["forces"] = np.concatenate([a.arrays[keys.FORCES] for a in images])
    if all(keys.STRESS in a.info for a in images):
        arrays["stress"] = np.array([a.info[keys.STRESS] for a in images])
    write_arrays(args.output, arrays)
    print(f"wrote {features.shape[0]} rows x {features.shape[1]} features of {len(images)} structures "
          f"to {args.output}")
    return 0


def write_arrays(path: str, arrays: dict[str, np.ndarray]) -> None:
    """Write named arrays to .npz or .h5, atomically."""
    from .._files import atomic_path
    from ..errors import ConfigError

    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in (".npz", ".h5", ".hdf5"):
        raise ConfigError(f"{path}: the output must end in .npz, .h5 or .hdf5")
    with atomic_path(target) as tmp:
        if suffix == ".npz":
            with open(tmp, "wb") as handle:
                np.savez_compressed(handle, **arrays)
        else:
            try:
                import h5py
            except ImportError:
                raise ConfigError("writing HDF5 needs h5py (pip install h5py); or write .npz") from None
            with h5py.File(tmp, "w") as handle:
                for name, value in arrays.items():
                    data = value.astype("S") if value.dtype.kind == "U" else value
                    handle.create_dataset(name, data=data)
