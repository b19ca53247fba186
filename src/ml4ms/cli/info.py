"""``ml4ms info MODEL``: what a model file holds."""

from __future__ import annotations

import argparse
import json


def register(commands) -> None:
    parser = commands.add_parser("info", help="describe a model file",
                                 description="Print the header of a model file: class, elements, "
                                 "cutoff, units, version, training-data hash, metrics.")
    parser.add_argument("model", help="model file (.ml4ms)")
    parser.add_argument("--json", action="store_true", help="print the whole header as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..serialization import load, read_header

    header = read_header(args.model)
    load(args.model)  # verifies the weights' checksum and that the model can be rebuilt
    if args.json:
        print(json.dumps(header, indent=2, ensure_ascii=False))
        return 0
    elements = ", ".join(header["elements"]) if header.get("elements") else "any"
    print(f"model:          {args.model}")
    print(f"class:          {header['class']}")
    print(f"elements:       {elements}")
    print(f"cutoff:         {header['cutoff']} Å")
    print(f"dtype:          {header.get('dtype', 'float64')}")
    print(f"ml4ms version:  {header['ml4ms_version']} (file format {header['format_version']})")
    print(f"training data:  {header.get('training_data_hash') or 'not recorded'}")
    print(f"config:         {json.dumps(header['config'])}")
    if header.get("reference_energies"):
        e0 = ", ".join(f"{k} {v:.6f}" for k, v in header["reference_energies"].items())
        print(f"E0 (eV):        {e0}")
    for name, value in (header.get("metrics") or {}).items():
        print(f"metric {name}: {json.dumps(value)}")
    return 0
