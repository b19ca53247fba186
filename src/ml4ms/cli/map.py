"""``ml4ms map INPUT --descriptor CONFIG``: a map of chemical space, for chemiscope and as a PNG."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

#: Property-name prefix of the map coordinates, per method (chemiscope style: ``PCA[1]``).
PREFIX = {"pca": "PCA", "kpca": "kPCA", "autoencoder": "AE"}


def register(commands) -> None:
    parser = commands.add_parser(
        "map", help="project structures or atomic environments onto a 2-D map (chemiscope JSON + PNG)",
        description="Featurise INPUT (a structure file or a dataset spec such as mlearn:Cu:test) with a "
        "descriptor, project the rows (one per structure, the mean of the atomic descriptors; or one per "
        "atom with --target atom) onto a low-dimensional map, optionally cluster them, and write a "
        "chemiscope dataset (OUTPUT.json or .json.gz: structures, map coordinates, energy per atom, "
        "group, clusters) and a scatter plot next to it (OUTPUT.png).",
    )
    parser.add_argument("input", metavar="INPUT", help="structures: a file or a dataset spec")
    parser.add_argument("--descriptor", required=True, metavar="CONFIG_OR_OPTIONS",
                        help="YAML file or inline mapping, e.g. '{descriptor: soap, species: [Cu], r_cut: 5, "
                        "n_max: 6, l_max: 4, periodic: true}'")
    parser.add_argument("--method", choices=("pca", "kpca", "autoencoder"), default="pca",
                        help="pca (default), kpca (SOAP kernel PCA) or autoencoder")
    parser.add_argument("--target", choices=("structure", "atom"), default="structure",
                        help="one point per structure (default) or per atomic environment")
    parser.add_argument("--n-components", type=int, default=2, help="map dimension (default: 2)")
    parser.add_argument("--zeta", type=int, default=2, help="kernel exponent for kpca (default: 2)")
    parser.add_argument("--map-options", default=None, metavar="YAML",
                        help="further options of the map estimator as an inline mapping, e.g. "
                        "'{standardize: true}' or '{hidden: [32], max_epochs: 200}'")
    parser.add_argument("--cluster", choices=("kmeans", "dbscan", "hdbscan"), default=None,
                        help="cluster the points and write the labels as the property 'cluster'")
    parser.add_argument("--n-clusters", type=int, default=None,
                        help="k for kmeans (default: chosen by silhouette score among 2-10)")
    parser.add_argument("--cluster-options", default=None, metavar="YAML",
                        help="options of the clustering, e.g. '{eps: 0.1, min_samples: 5}' or "
                        "'{min_cluster_size: 10}'")
    parser.add_argument("--cluster-on", choices=("map", "features"), default="map",
                        help="cluster the map coordinates (default) or the descriptor vectors")
    parser.add_argument("--color", default=None, metavar="PROPERTY",
                        help="property that colours the PNG and the chemiscope map (default: group, "
                        "else energy_per_atom, else cluster)")
    parser.add_argument("--output", default="map.json", metavar="OUTPUT",
                        help="chemiscope file, .json or .json.gz (default: map.json); the PNG goes beside it")
    parser.add_argument("--cutoff", type=float, default=None,
                        help="radius (Å) of the environments chemiscope highlights (default: the descriptor's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the autoencoder and k-means (default: 0)")
    parser.add_argument("--n-jobs", type=int, default=1, help="threads for the descriptor (default: 1)")
    parser.add_argument("--energy-key", default="energy", help="name of the energy label (default: energy)")
    parser.set_defaults(func=run)


def _inline_mapping(text: str | None, what: str) -> dict[str, Any]:
    import yaml

    from ..errors import ConfigError

    if text is None:
        return {}
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} is not valid YAML: {exc}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{what} must be a mapping such as '{{key: value}}', got {text!r}")
    return value


def png_path(output: str | Path) -> Path:
    """``map.png`` for ``map.json`` or ``map.json.gz``."""
    output = Path(output)
    name = output.name.removesuffix(".gz").removesuffix(".json")
    return output.with_name(name + ".png")


def run(args: argparse.Namespace) -> int:
    from .. import keys
    from .._version import __version__
    from ..analysis.chemiscope import map_settings, write_chemiscope
    from ..analysis.clustering import cluster
    from ..analysis.maps import make_map, map_features, plot_map
    from ..data.sources import read_structures
    from ..errors import ConfigError
    from .featurize import descriptor_from_config, load_config

    output = Path(args.output)
    if not (output.name.endswith(".json") or output.name.endswith(".json.gz")):
        raise ConfigError(f"{output}: the output must end in .json or .json.gz")
    descriptor_config = load_config(args.descriptor)
    descriptor = descriptor_from_config(descriptor_config)
    options = _inline_mapping(args.map_options, "--map-options")
    if args.method == "kpca":
        options.setdefault("zeta", args.zeta)
    if args.method == "autoencoder":
        options.setdefault("random_state", args.seed)
    estimator = make_map(args.method, args.n_components, **options)
    cluster_options = _inline_mapping(args.cluster_options, "--cluster-options")
    if args.n_clusters is not None and args.cluster is None:
        raise ConfigError("--n-clusters needs --cluster kmeans")

    images = read_structures(args.input, energy_key=args.energy_key)
    rows = map_features(images, descriptor, target=args.target, n_jobs=args.n_jobs)
    coordinates = estimator.fit_transform(rows.features)
    prefix = PREFIX[args.method]
    n_atoms = np.array([len(a) for a in images])

    properties: dict[str, dict[str, Any]] = {
        prefix: {"target": args.target, "values": coordinates,
                 "description": f"{args.method} map of the {descriptor_config.get('descriptor')} descriptor"},
        "n_atoms": {"target": "structure", "values": n_atoms, "description": "number of atoms"},
    }
    if all(keys.ENERGY in a.info for a in images):
        energy = np.array([a.info[keys.ENERGY] for a in images], dtype=float)
        if np.isfinite(energy).all():
            properties["energy_per_atom"] = {"target": "structure", "values": energy / n_atoms, "units": "eV/atom",
                                             "description": "total energy divided by the number of atoms"}
    groups = [a.info.get(keys.GROUP, a.info.get("group")) for a in images]
    if all(isinstance(g, str) and g for g in groups):
        properties["group"] = {"target": "structure", "values": np.array(groups, dtype=str),
                               "description": "structure group (config_type)"}
    if args.target == "atom":
        symbols = np.concatenate([a.get_chemical_symbols() for a in images])
        first_atom = np.cumsum(n_atoms) - n_atoms
        properties["element"] = {"target": "atom", "values": symbols[first_atom[rows.structure] + rows.center],
                                 "description": "element of the central atom"}
    summary = []
    if hasattr(estimator, "explained_variance_ratio_"):
        ratio = np.asarray(estimator.explained_variance_ratio_)
        summary.append("explained variance " + ", ".join(f"{r:.1%}" for r in ratio))
    if hasattr(estimator, "reconstruction_error_"):
        summary.append(f"validation reconstruction error {estimator.reconstruction_error_:.3g} "
                       f"(per standardised feature) after {estimator.best_epoch_} epochs")
    if args.cluster is not None:
        data = coordinates if args.cluster_on == "map" else rows.features
        result = cluster(data, args.cluster, n_clusters=args.n_clusters, random_state=args.seed, **cluster_options)
        properties["cluster"] = {"target": args.target, "values": result.labels,
                                 "description": f"{args.cluster} cluster of the {args.cluster_on} (-1: noise)"}
        summary.append(f"{result.n_clusters} {args.cluster} clusters, silhouette {result.silhouette:.3f}"
                       + (f", {result.noise_fraction:.0%} noise" if result.noise_fraction else ""))

    names = [f"{prefix}[{k + 1}]" for k in range(coordinates.shape[1])] if coordinates.shape[1] > 1 else [prefix]
    available = [n for n in properties if n != prefix] + names
    color = args.color
    if color is None:
        color = next((n for n in ("group", "energy_per_atom", "cluster") if n in properties), None)
    elif color not in available:
        raise ConfigError(f"--color {color!r} is not a property of the map; choose from {', '.join(available)}")
    color_values = None
    if color is not None:
        if color in names:
            color_values = coordinates[:, names.index(color)]
        else:
            prop = properties[color]
            color_values = np.asarray(prop["values"])
            if prop["target"] == "structure" and args.target == "atom":
                color_values = color_values[rows.structure]

    environments = None
    if args.target == "atom":
        # The descriptor's nominal cutoff (SOAP's r_cut, not its wider basis support), else 3.5 Å.
        cutoff = args.cutoff or float(getattr(descriptor, "r_cut", None) or getattr(descriptor, "cutoff", None) or 3.5)
        environments = [(int(s), int(c), cutoff) for s, c in zip(rows.structure, rows.center)]
    settings = map_settings(names[0], names[1] if len(names) > 1 else "n_atoms", color=color, target=args.target,
                            symbol="group" if "group" in properties and color != "group" else None)
    meta = {
        "name": f"{args.input}: {args.method} map",
        "description": f"{args.method} map ({args.target} target) of {len(images)} structures from {args.input}, "
                       f"descriptor {descriptor_config}. Written by ml4ms {__version__}.",
        "authors": ["ml4ms map"],
        "references": [],
    }
    write_chemiscope(output, images, properties, environments=environments, meta=meta, settings=settings)
    png = plot_map(coordinates, png_path(output), color=color_values, color_label=color or "",
                   labels=names if len(names) > 1 else (names[0], ""),
                   title=f"{args.input}: {args.method}, {args.target} target")
    points = f"{len(coordinates)} atomic environments of " if args.target == "atom" else ""
    print(f"wrote the {args.method} map of {points}{len(images)} structures to {output} and {png}")
    for line in summary:
        print(f"  {line}")
    return 0
