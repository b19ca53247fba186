"""The ``ml4ms`` command line.

Each sub-command lives in its own module and registers itself with :func:`main`'s
parser. A failing command prints one line starting with ``error:`` and exits with
status 1 (2 for bad usage, as argparse does); ``ML4MS_DEBUG=1`` shows the traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .._version import __version__


def build_parser() -> argparse.ArgumentParser:
    from . import abc, bo, data, demo, dimension, featurize, fit, info, map, property, simulate

    parser = argparse.ArgumentParser(
        prog="ml4ms",
        description="Machine learning for materials science: data, descriptors, potentials, simulations, "
        "property prediction, Bayesian inference and data analysis.",
    )
    parser.add_argument("--version", action="version", version=f"ml4ms {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (info, data, featurize, fit, simulate, property, abc, bo, dimension, map, demo):
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one clear line, not a traceback, for every failure
        if os.environ.get("ML4MS_DEBUG"):
            raise
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
