"""``ml4ms data stats`` and ``ml4ms data convert``."""

from __future__ import annotations

import argparse


def _add_key_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--energy-key", default="energy", help="name of the energy label (default: energy)")
    parser.add_argument("--forces-key", default="forces", help="name of the forces label (default: forces)")
    parser.add_argument("--stress-key", default="stress", help="name of the stress label (default: stress)")
    parser.add_argument("--index", default=":", help="which structures of each file, as ASE's index (default: all)")


def _read_options(args: argparse.Namespace) -> dict:
    return {"index": args.index, "energy_key": args.energy_key, "forces_key": args.forces_key,
            "stress_key": args.stress_key}


def register(commands) -> None:
    data = commands.add_parser("data", help="inspect and convert labelled structures",
                               description="Inspect and convert labelled structures.")
    sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)

    stats = sub.add_parser(
        "stats", help="counts, elements, label coverage and ranges, per-element E0s",
        description="Statistics of labelled structures read from files (any format ASE reads, "
        "mlearn/pymatgen JSON, ASE databases) or public datasets (e.g. mlearn:Cu:train).",
    )
    stats.add_argument("inputs", nargs="+", metavar="FILE", help="files or dataset specs")
    stats.add_argument("--json", metavar="OUT", help="also write the statistics as JSON")
    _add_key_options(stats)
    stats.set_defaults(func=run_stats)

    convert = sub.add_parser(
        "convert", help="convert between formats (labels kept, in ASE units)",
        description="Read labelled structures and write them in another format (by the output's "
        "suffix, or --format): extxyz, ASE database (.db), or anything ASE writes.",
    )
    convert.add_argument("input", help="file or dataset spec")
    convert.add_argument("output", help="output file")
    convert.add_argument("--format", help="output format (default: from the suffix)")
    _add_key_options(convert)
    convert.set_defaults(func=run_convert)


def run_stats(args: argparse.Namespace) -> int:
    from ..data.dataset import AtomsDataset
    from ..data.sources import read_structures
    from ..report import write_json

    images = []
    for source in args.inputs:
        images.extend(read_structures(source, **_read_options(args)))
    stats = AtomsDataset(images, source=", ".join(args.inputs)).statistics()
    print(format_statistics(stats, args.inputs))
    if args.json:
        write_json(args.json, {"inputs": list(args.inputs), **stats.to_dict()})
        print(f"wrote {args.json}")
    return 0


def format_statistics(stats, inputs) -> str:
    """The statistics as aligned text."""
    lines = [f"inputs:           {', '.join(map(str, inputs))}",
             f"structures:       {stats.n_structures}",
             f"atoms:            {stats.n_atoms}"]
    if stats.atoms_per_structure:
        a = stats.atoms_per_structure
        lines.append(f"atoms/structure:  {a['min']:.0f} .. {a['max']:.0f} (mean {a['mean']:.1f})")
    lines.append("elements:         " + ", ".join(f"{el} {n}" for el, n in stats.elements.items()))
    lines.append("label coverage:   " + ", ".join(f"{k} {100 * v:.0f}%" for k, v in stats.coverage.items()))
    if stats.energy_per_atom:
        e = stats.energy_per_atom
        lines.append(f"energy/atom (eV): {e['min']:.4f} .. {e['max']:.4f} (mean {e['mean']:.4f}, std {e['std']:.4f})")
    if stats.forces:
        f = stats.forces
        lines.append(f"forces (eV/Å):    rms component {f['rms_component']:.4f}, max |F| {f['max_norm']:.4f}")
    if stats.stress_gpa:
        s = stats.stress_gpa
        lines.append(f"stress (GPa):     {s['min']:.3f} .. {s['max']:.3f}")
    if stats.reference_energies:
        lines.append("E0 fit (eV):      " + ", ".join(f"{k} {v:.6f}" for k, v in stats.reference_energies.items()))
    if stats.groups:
        lines.append("groups:           " + ", ".join(f"{k} {v}" for k, v in sorted(stats.groups.items())))
    return "\n".join(lines)


def run_convert(args: argparse.Namespace) -> int:
    from ..data.io import write
    from ..data.sources import read_structures

    images = read_structures(args.input, **_read_options(args))
    write(args.output, images, format=args.format)
    print(f"wrote {len(images)} structures to {args.output}")
    return 0
