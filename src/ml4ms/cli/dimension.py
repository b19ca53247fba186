"""``ml4ms dimension INPUT``: intrinsic dimension of a feature matrix or of structures' descriptors."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

MATRIX_SUFFIXES = (".npz", ".npy", ".csv", ".txt")


def register(commands) -> None:
    parser = commands.add_parser(
        "dimension", help="intrinsic dimension (TwoNN, GRIDE) of features or of structures' descriptors",
        description="Estimate the intrinsic dimension of INPUT: a feature matrix (.npz with an array "
        "'features' or a single array, .npy, or .csv with one row per point) or structures (a file or a "
        "dataset spec such as aspirin_gfn2@:500) turned into feature vectors by --descriptor. Write the "
        "estimate with its error and the GRIDE scale dependence to OUTPUT (JSON) and a plot of the scale "
        "dependence beside it (.png).",
    )
    parser.add_argument("input", metavar="INPUT", help="feature matrix file, or structures (file or dataset spec)")
    parser.add_argument("--descriptor", metavar="CONFIG_OR_OPTIONS", default=None,
                        help="for structures: YAML file or inline mapping, e.g. "
                        "'{descriptor: soap, species: [C, H, O], r_cut: 4, n_max: 4, l_max: 3}'")
    parser.add_argument("--pool", choices=("mean", "sum", "none"), default="mean",
                        help="for per-atom descriptors: pool over each structure's atoms (default: mean) or "
                        "none (one point per atom)")
    parser.add_argument("--per-atom", action="store_true", help="one point per atom (same as --pool none)")
    parser.add_argument("--method", choices=("twonn", "gride"), default="twonn", help="estimator (default: twonn)")
    parser.add_argument("--estimator", choices=("mle", "fit"), default="mle",
                        help="TwoNN: maximum likelihood (default) or the line fit of Facco et al.")
    parser.add_argument("--n1", type=int, default=1, help="GRIDE: neighbour order of the reported estimate")
    parser.add_argument("--max-order", type=int, default=64,
                        help="largest neighbour order of the scale dependence (default: 64)")
    parser.add_argument("--key", default=None, help="array name in an .npz (default: 'features' or the only one)")
    parser.add_argument("--output", default="dimension.json", help="JSON output (default: dimension.json)")
    parser.add_argument("--n-jobs", type=int, default=1, help="threads of the descriptor (default: 1)")
    parser.set_defaults(func=run)


def read_matrix(path: str | Path, key: str | None = None) -> np.ndarray:
    """A feature matrix from .npz (``key``, ``features`` or the only array), .npy or .csv/.txt."""
    from ..errors import ConfigError, FileFormatError

    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                names = list(data.keys())
                name = key or ("features" if "features" in names else (names[0] if len(names) == 1 else None))
                if name is None or name not in names:
                    raise ConfigError(f"{path}: name the array with --key; it holds {', '.join(names)}")
                return data[name]
        delimiter = "," if suffix == ".csv" else None
        with open(path) as handle:
            first = handle.readline()
        try:
            [float(v) for v in first.replace(",", " ").split()]
            skip = 0
        except ValueError:  # a header line
            skip = 1
        return np.loadtxt(path, delimiter=delimiter, skiprows=skip, ndmin=2)
    except (OSError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise FileFormatError(f"cannot read a feature matrix: {exc}", path=path) from None


def run(args: argparse.Namespace) -> int:
    from ..analysis.intrinsic_dimension import intrinsic_dimension, scaling_plot
    from ..errors import ConfigError
    from ..report import write_json

    pool = "none" if args.per_atom else args.pool
    path = Path(args.input)
    if path.suffix.lower() in MATRIX_SUFFIXES and path.is_file():
        X = read_matrix(path, args.key)
        source = {"input": str(path), "kind": "feature matrix"}
    else:
        from ..data.sources import read_structures
        from ..descriptors.featurizer import Featurizer
        from .featurize import descriptor_from_config, load_config

        if args.descriptor is None:
            raise ConfigError(f"{args.input}: structures need --descriptor (e.g. "
                              "'{descriptor: soap, species: [Cu], r_cut: 4, n_max: 4, l_max: 3}')")
        config = load_config(args.descriptor)
        images = read_structures(args.input)
        X = Featurizer(descriptor_from_config(config), pool=pool, n_jobs=args.n_jobs).fit(images).transform(images)
        source = {"input": str(args.input), "kind": "structures", "n_structures": len(images),
                  "descriptor": config, "pool": pool}
    main = intrinsic_dimension(X, args.method, estimator=args.estimator, n1=args.n1, max_order=args.max_order)
    scaling = main if args.method == "gride" else intrinsic_dimension(X, "gride", max_order=args.max_order)
    output = Path(args.output)
    plot = output.with_suffix(".png")
    scaling_plot(scaling, plot, title=f"{Path(str(args.input)).name}: {X.shape[0]} points, {X.shape[1]} features")
    write_json(output, {**source, "n_rows": int(X.shape[0]), "n_features": int(X.shape[1]),
                        **main.to_dict(), "scaling": scaling.to_dict(), "plot": plot.name})
    print(f"intrinsic dimension ({args.method}): {main.dimension:.2f} ± {main.error:.2f} "
          f"from {main.n_points} points")
    print("scale dependence (GRIDE): " + ", ".join(
        f"{s:.3g}: {d:.2f}" for s, d in zip(scaling.scales, scaling.dimensions)))
    print(f"wrote {output} and {plot}")
    return 0
