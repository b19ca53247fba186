"""Public datasets: found locally, or downloaded once to a cache and verified.

>>> from ml4ms.data import datasets
>>> train = datasets.load("mlearn", element="Si", split="train")   # doctest: +SKIP
>>> table = datasets.load("matbench_expt_gap")                      # doctest: +SKIP
>>> train_idx, test_idx = table.split(0)                            # doctest: +SKIP

Datasets
--------
- ``mlearn`` (options ``element``: Ni, Cu, Li, Mo, Si, Ge; ``split``: train, test):
  ``list[ase.Atoms]`` with DFT energy (eV), forces (eV/Å) and stress (eV/Å³, ASE sign
  and Voigt order); Zuo et al., J. Phys. Chem. A 124, 731 (2020).
- ``matbench_expt_gap`` (no options): :class:`CompositionTable`, composition ->
  experimental band gap (eV), with the official Matbench v0.1 folds.
- ``perov_5`` (option ``split``: val, test): ``list[ase.Atoms]``, 5-atom cubic
  perovskites with heats of formation (eV per cell) and band gaps (eV); CDVAE's files.
- ``aspirin_gfn2`` (no options): ``list[ase.Atoms]``, 1000 MD frames of aspirin with
  GFN2-xTB energy (eV) and forces (eV/Å).

See ``shared/data/README.md`` for sources, licences, citations and published results.

Where files come from
---------------------
Every file has a path relative to a data directory (the layout of the project's
``shared/data``: ``mlearn/Si/training.json``, ``perov_5/val.csv``...). :func:`fetch`
looks for it, in order,

1. in ``$ML4MS_DATA_DIR/<relpath>`` (a directory prepared by hand; not verified again),
2. in the cache, ``$ML4MS_CACHE_DIR/<relpath>`` (default ``~/.cache/ml4ms``),
3. and otherwise downloads it from its pinned URL (a raw GitHub URL at a fixed commit,
   so the bytes cannot change), with a timeout and a progress bar, into a temporary file
   in the cache directory. Its SHA-256 is checked when known, and only then is the file
   moved into place with :func:`os.replace` (atomic: the cache never holds a partial or
   unverified file). A failed download or a checksum mismatch raises
   :class:`~ml4ms.errors.DatasetError` naming the URL, and leaves nothing behind.

Some files are *derived* from a download rather than downloaded:

- ``matbench_expt_gap/matbench_expt_gap.csv`` (``mbid, composition, gap_expt_eV,
  matbench_test_fold``) is built from Matbench's ``matbench_expt_gap.json.bz2`` with
  the official folds recomputed exactly as Matbench v0.1 does
  (:func:`matbench_folds`). The result is byte-identical to the reference copy and is
  checked against its SHA-256.
- ``mlearn/Ni/training.json`` and ``mlearn/Cu/training.json`` are missing from every
  copy of the mlearn repository we could obtain; they are rebuilt from ALIGNN's
  ``id_prop.json`` files, which hold the same training entries
  (:func:`mlearn_records_from_alignn`). **The SHA-256 of those upstream ALIGNN files is
  not known** (they could not be downloaded when this registry was written), so the
  download itself is not checksum-verified (``sha256=None``). Instead the number of
  entries (training block + the test block twice), the number of training structures
  (263 for Ni, 262 for Cu) and of atoms (27,420 and 27,416) are checked, and the rebuilt
  file is checked against the SHA-256 of the reference reconstruction in
  ``shared/data``. The rebuilding code reproduces that reference file byte for byte from
  its own records (tested), so a mismatch most likely means that the upstream content
  differs from what the reference was built from; the rebuilt file is then discarded,
  and so is the unverified download (cached as ``mlearn/<El>/alignn_id_prop.json``).
  This is weaker than a checksum of the download itself, which nobody has recorded.

``aspirin_gfn2`` has no public URL: it is available only through ``ML4MS_DATA_DIR``.

Nothing here touches the network at import time.
"""

from __future__ import annotations

import bz2
import csv
import hashlib
import http.client
import io
import json
import os
import tempfile
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from .._version import __version__
from ..errors import ConfigError, DatasetError

__all__ = [
    "DATASETS",
    "ENV_CACHE_DIR",
    "ENV_DATA_DIR",
    "REGISTRY",
    "CompositionTable",
    "DataFile",
    "cache_dir",
    "data_dir",
    "fetch",
    "load",
    "matbench_csv_from_json",
    "matbench_folds",
    "mlearn_records_from_alignn",
    "path",
    "sha256sum",
]

#: Environment variable naming a directory that already holds the data files.
ENV_DATA_DIR = "ML4MS_DATA_DIR"
#: Environment variable naming the download cache (default ``~/.cache/ml4ms``).
ENV_CACHE_DIR = "ML4MS_CACHE_DIR"

#: Seconds to wait for the server before a download fails.
DEFAULT_TIMEOUT = 60.0

_CHUNK = 1 << 20

# --------------------------------------------------------------------------------------
# Pinned sources
# --------------------------------------------------------------------------------------

MLEARN_COMMIT = "10c427a5480c6281c15c64efaf869b03be04818f"
ALIGNN_COMMIT = "a8be0bed552ac70c14b8db825a48dbca1d14ad8d"
MATBENCH_COMMIT = "936176db18ca4cd7b38cbd957c017a5bac770c6b"
CDVAE_COMMIT = "f857f598d6f6cca5dc1ea0582d228f12dcc2c2ea"

_MLEARN_URL = (
    "https://raw.githubusercontent.com/materialsvirtuallab/mlearn/"
    f"{MLEARN_COMMIT}/data/{{element}}/{{file}}"
)
_ALIGNN_URL = (
    "https://raw.githubusercontent.com/usnistgov/alignn/"
    f"{ALIGNN_COMMIT}/alignn/examples/sample_data_ff/mlearn_data/{{element}}/id_prop.json"
)
_MATBENCH_URL = (
    "https://raw.githubusercontent.com/materialsproject/matbench/"
    f"{MATBENCH_COMMIT}/scripts/artifacts/matbench_expt_gap.json.bz2"
)
_CDVAE_URL = (
    f"https://raw.githubusercontent.com/txie-93/cdvae/{CDVAE_COMMIT}/data/perov_5/{{split}}.csv"
)

MLEARN_ELEMENTS: tuple[str, ...] = ("Ni", "Cu", "Li", "Mo", "Si", "Ge")
MLEARN_SPLITS: dict[str, str] = {"train": "training.json", "test": "test.json"}
PEROV5_SPLITS: tuple[str, ...] = ("val", "test")

#: Training block of ALIGNN's mlearn ``id_prop.json`` files, which hold the mlearn
#: training entries in order followed by the test entries twice: element ->
#: (training structures, test structures, atoms in the training block).
ALIGNN_MLEARN_BLOCKS: dict[str, tuple[int, int, int]] = {
    "Ni": (263, 31, 27_420),
    "Cu": (262, 31, 27_416),
}

#: The official Matbench v0.1 cross-validation: ``KFold(5, shuffle=True, random_state=18012019)``.
MATBENCH_N_FOLDS = 5
MATBENCH_SEED = 18012019

# SHA-256 of each file as it is in the reference data directory (shared/data/SHA256SUMS):
# the upstream bytes for files copied unchanged, the rebuilt bytes for derived files.
_SHA256: dict[str, str] = {
    "mlearn/Ni/training.json": "4f55979852be96bfb9b33a9b86e7c3e227cb55c97e46489c46e046b174272843",
    "mlearn/Ni/test.json": "dccbfa14ddff5d1d35f658c48b68f6b431f95496a5261ef8b8f4d1d41e36008a",
    "mlearn/Cu/training.json": "b41947f48da2574c84ef3704c58845ac301a1bf8f18c633876611f6a82eca656",
    "mlearn/Cu/test.json": "1805a315ce8d0ce4a18bb761df4c4f619909ce114d598d426015d0071edc98c2",
    "mlearn/Li/training.json": "1cac01475c5a4fb85771ee1fd23366a6b8abfb9891e0c9e088b6e37228e147b3",
    "mlearn/Li/test.json": "554d0ce60b35a07b357be3a80bf04f68eb8fc97b5a88328caf08c860b5e9b260",
    "mlearn/Mo/training.json": "b13305fca0d0d2631ab080c8fcf13c743ee79a911712fb65a34ca88fadf09f9a",
    "mlearn/Mo/test.json": "68169e2927c2115daa2f504805fcb9548ee65daf2dd015428807ba92f8e13bb8",
    "mlearn/Si/training.json": "ae6d4b0a65b00e0fcf7ba0a6fad366716710d2f0d21d70199203089c6866b500",
    "mlearn/Si/test.json": "d452b30a89f23bff76f7cc529b7b6c2d159ea81ccd5a4599fb1a18207654fa91",
    "mlearn/Ge/training.json": "43dee02009a5167f94c7aafce19051222bcfc328c46181750cc2a2018187ca00",
    "mlearn/Ge/test.json": "737ea6159c9dd27ebee7fb8ffae22f15e20466884927771248ca4f5b2cd3f093",
    "matbench_expt_gap/matbench_expt_gap.json.bz2": (
        "11d79ac6f2c25e23a136295e9bc37ea9ea4a9fa936c6bc366e777c1cb1c397b9"
    ),
    "matbench_expt_gap/matbench_expt_gap.csv": (
        "8e4d7c414204ac20a1dea421eb5404a9209c6b3b1c97a91304b8b5c53ae34252"
    ),
    "perov_5/val.csv": "326f401219901270374b71e2faff63df3a29a99fd26f469993b9f476b693daf2",
    "perov_5/test.csv": "a85878c685037f0a578257f6d4fcdde00e968dbab73c5f1e90ecef65218513f6",
    "aspirin_gfn2/aspirin_gfn2xtb.extxyz": (
        "13e39b236c8dc7c52ad6bed78223a8db604b6b3420aa7ac541ca5492e79089f4"
    ),
}


@dataclass(frozen=True)
class DataFile:
    """One file of a public dataset, and how to obtain it.

    Parameters
    ----------
    relpath
        Path relative to the data directory / cache, with ``/`` separators.
    url
        Pinned download URL, or None when the file is not downloaded directly.
    sha256
        SHA-256 (hex) of the file's bytes (downloaded or built), or None when unknown.
    source
        For a derived file: the ``relpath`` of the registry file it is built from.
    build
        For a derived file: ``build(source_path, out_path)`` writes it.
    note
        Where it comes from, in words (shown in error messages).
    """

    relpath: str
    url: str | None = None
    sha256: str | None = None
    source: str | None = None
    build: Callable[[Path, Path], None] | None = field(default=None, compare=False)
    note: str = ""


def _alignn_builder(element: str) -> Callable[[Path, Path], None]:
    n_train, n_test, n_atoms = ALIGNN_MLEARN_BLOCKS[element]

    def build(source: Path, out: Path) -> None:
        try:
            with open(source, encoding="utf-8") as f:
                entries = json.load(f)
        except (OSError, ValueError) as exc:
            raise DatasetError(f"{source}: cannot read ALIGNN id_prop.json: {exc}") from exc
        expected = n_train + 2 * n_test
        if not isinstance(entries, list) or len(entries) != expected:
            got = len(entries) if isinstance(entries, list) else type(entries).__name__
            raise DatasetError(
                f"{source}: expected {expected} ALIGNN entries for {element} "
                f"({n_train} training + 2 x {n_test} test), got {got}"
            )
        records = mlearn_records_from_alignn(entries, n_train)
        atoms = sum(r["num_atoms"] for r in records)
        if atoms != n_atoms:
            raise DatasetError(
                f"{source}: the {n_train} rebuilt {element} training structures hold "
                f"{atoms} atoms; expected {n_atoms}"
            )
        with open(out, "w", encoding="utf-8") as f:
            json.dump(records, f)

    return build


def _make_registry() -> dict[str, DataFile]:
    files: list[DataFile] = []
    for el in MLEARN_ELEMENTS:
        for fname in ("training.json", "test.json"):
            rel = f"mlearn/{el}/{fname}"
            if el in ALIGNN_MLEARN_BLOCKS and fname == "training.json":
                src = f"mlearn/{el}/alignn_id_prop.json"
                files.append(
                    DataFile(
                        src,
                        url=_ALIGNN_URL.format(element=el),
                        sha256=None,  # unknown: the upstream file could not be hashed
                        note=f"ALIGNN's copy of the mlearn {el} data (alignn@{ALIGNN_COMMIT[:7]})",
                    )
                )
                files.append(
                    DataFile(
                        rel,
                        sha256=_SHA256[rel],
                        source=src,
                        build=_alignn_builder(el),
                        note=f"mlearn {el} training set rebuilt from ALIGNN's id_prop.json",
                    )
                )
            else:
                files.append(
                    DataFile(
                        rel,
                        url=_MLEARN_URL.format(element=el, file=fname),
                        sha256=_SHA256[rel],
                        note=f"mlearn@{MLEARN_COMMIT[:7]}",
                    )
                )
    mb_json = "matbench_expt_gap/matbench_expt_gap.json.bz2"
    mb_csv = "matbench_expt_gap/matbench_expt_gap.csv"
    files.append(
        DataFile(mb_json, url=_MATBENCH_URL, sha256=_SHA256[mb_json],
                 note=f"matbench@{MATBENCH_COMMIT[:7]}")
    )
    files.append(
        DataFile(mb_csv, sha256=_SHA256[mb_csv], source=mb_json,
                 build=lambda src, out: matbench_csv_from_json(src, out),
                 note="matbench_expt_gap with the official folds recomputed")
    )
    for split in PEROV5_SPLITS:
        rel = f"perov_5/{split}.csv"
        files.append(
            DataFile(rel, url=_CDVAE_URL.format(split=split), sha256=_SHA256[rel],
                     note=f"cdvae@{CDVAE_COMMIT[:7]}")
        )
    rel = "aspirin_gfn2/aspirin_gfn2xtb.extxyz"
    files.append(
        DataFile(rel, url=None, sha256=_SHA256[rel],
                 note="made for ml4ms; no public URL, available only through ML4MS_DATA_DIR")
    )
    return {f.relpath: f for f in files}


#: Every known file, by relative path.
REGISTRY: dict[str, DataFile] = _make_registry()

# --------------------------------------------------------------------------------------
# Locating and downloading files
# --------------------------------------------------------------------------------------


def data_dir() -> Path | None:
    """The directory named by ``$ML4MS_DATA_DIR``, or None when it is unset or empty."""
    value = os.environ.get(ENV_DATA_DIR, "").strip()
    return Path(value).expanduser() if value else None


def cache_dir() -> Path:
    """The download cache: ``$ML4MS_CACHE_DIR``, else ``~/.cache/ml4ms`` (not created here)."""
    value = os.environ.get(ENV_CACHE_DIR, "").strip()
    return Path(value).expanduser() if value else Path.home() / ".cache" / "ml4ms"


def sha256sum(file: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, as 64 lowercase hex digits."""
    h = hashlib.sha256()
    with open(file, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _clean_relpath(relpath: str | os.PathLike) -> str:
    rel = Path(relpath).as_posix()
    parts = Path(rel).parts
    if not parts or Path(rel).is_absolute() or ".." in parts:
        raise ConfigError(f"expected a path relative to the data directory, got {str(relpath)!r}")
    return rel


def fetch(relpath: str | os.PathLike, *, timeout: float = DEFAULT_TIMEOUT) -> Path:
    """Local path of a data file: from ``$ML4MS_DATA_DIR``, the cache, or a download.

    Parameters
    ----------
    relpath
        Path relative to the data directory, e.g. ``"mlearn/Si/test.json"``.
    timeout
        Seconds to wait for the server (each connection and each read).

    Returns
    -------
    pathlib.Path
        ``$ML4MS_DATA_DIR/<relpath>`` if it exists, else ``<cache>/<relpath>`` (downloaded
        or built there first if needed).

    Raises
    ------
    DatasetError
        The file is in neither directory and cannot be obtained: it is not in the
        registry, has no public URL, the download fails (the URL is named), its SHA-256
        differs from the pinned one (expected and actual are named), or a derived file
        fails its checks.
    """
    rel = _clean_relpath(relpath)
    local = data_dir()
    if local is not None and (local / rel).is_file():
        return local / rel
    cached = cache_dir() / rel
    if cached.is_file():
        return cached
    entry = REGISTRY.get(rel)
    where = f"${ENV_DATA_DIR}" + (f" (= {local})" if local is not None else " (unset)")
    if entry is None:
        raise DatasetError(
            f"{rel}: not found in {where} nor in the cache {cache_dir()}, and not a "
            f"registered dataset file, so it cannot be downloaded"
        )
    if entry.url is not None:
        _download(entry, cached, timeout=timeout)
    elif entry.source is not None and entry.build is not None:
        source = fetch(entry.source, timeout=timeout)
        try:
            _build(entry, source, cached)
        except DatasetError:
            # An unverified download that fails the checks is not kept in the cache.
            if REGISTRY[entry.source].sha256 is None and source == cache_dir() / entry.source:
                source.unlink(missing_ok=True)
            raise
    else:
        raise DatasetError(
            f"{rel}: not found in {where} nor in the cache {cache_dir()}. This file has no "
            f"public URL ({entry.note}); set {ENV_DATA_DIR} to a directory that holds {rel}."
        )
    return cached


def _temp_file(dest: Path) -> tuple[int, Path]:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    return fd, Path(tmp)


def _download(entry: DataFile, dest: Path, *, timeout: float) -> None:
    """Download ``entry.url`` to ``dest`` atomically, verifying the SHA-256 when known."""
    url = entry.url
    assert url is not None
    hint = (
        f"Check the network, or set {ENV_DATA_DIR} to a directory that holds {entry.relpath}."
    )
    fd, tmp = _temp_file(dest)
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            request = urllib.request.Request(url, headers={"User-Agent": f"ml4ms/{__version__}"})
            try:
                with urllib.request.urlopen(request, timeout=timeout) as response:
                    length = response.headers.get("Content-Length")
                    size = int(length) if length and length.isdigit() else None
                    received = 0
                    progress = None
                    if size is not None:
                        from tqdm.auto import tqdm

                        progress = tqdm(total=size, unit="B", unit_scale=True,
                                        unit_divisor=1024, desc=entry.relpath, leave=False)
                    try:
                        while chunk := response.read(_CHUNK):
                            out.write(chunk)
                            h.update(chunk)
                            received += len(chunk)
                            if progress is not None:
                                progress.update(len(chunk))
                    finally:
                        if progress is not None:
                            progress.close()
            except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
                reason = exc
                if isinstance(exc, urllib.error.HTTPError):
                    exc.close()  # it holds the open response
                elif isinstance(exc, urllib.error.URLError):
                    reason = exc.reason
                raise DatasetError(f"could not download {url}: {reason}. {hint}") from exc
            if size is not None and received != size:
                raise DatasetError(
                    f"could not download {url}: received {received} of {size} bytes. {hint}"
                )
        got = h.hexdigest()
        if entry.sha256 is not None and got != entry.sha256:
            raise DatasetError(
                f"checksum mismatch for {url}: expected sha256 {entry.sha256}, got {got}; "
                f"the download was discarded. {hint}"
            )
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _build(entry: DataFile, source: Path, dest: Path) -> None:
    """Build a derived file from its source into ``dest`` atomically, verifying it."""
    assert entry.build is not None
    fd, tmp = _temp_file(dest)
    os.close(fd)
    try:
        entry.build(source, tmp)
        if entry.sha256 is not None:
            got = sha256sum(tmp)
            if got != entry.sha256:
                raise DatasetError(
                    f"checksum mismatch for {entry.relpath} built from {source}"
                    + (f" ({REGISTRY[entry.source].url})" if entry.source in REGISTRY else "")
                    + f": expected sha256 {entry.sha256}, got {got}; the file was discarded. "
                    f"Set {ENV_DATA_DIR} to a directory that holds {entry.relpath}."
                )
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------------------
# Rebuilding derived files
# --------------------------------------------------------------------------------------


def matbench_folds(n: int) -> np.ndarray:
    """Official Matbench v0.1 test fold (0-4) of each of ``n`` rows, in file order.

    Matbench splits with ``sklearn.model_selection.KFold(n_splits=5, shuffle=True,
    random_state=18012019)`` over the rows of the dataset in file order; row ``i`` is a
    test row of fold ``folds[i]``.
    """
    from sklearn.model_selection import KFold

    folds = np.full(n, -1, dtype=np.int64)
    kfold = KFold(n_splits=MATBENCH_N_FOLDS, shuffle=True, random_state=MATBENCH_SEED)
    for k, (_, test) in enumerate(kfold.split(np.zeros((n, 1)))):
        folds[test] = k
    return folds


def matbench_csv_from_json(source: str | os.PathLike, out: str | os.PathLike) -> None:
    """Write ``matbench_expt_gap.csv`` from Matbench's ``matbench_expt_gap.json.bz2``.

    Parameters
    ----------
    source
        The pandas "columns" JSON (bz2-compressed): ``{"mbid": {"0": ...}, "composition":
        {...}, "gap expt": {...}}``, rows keyed ``"0"``, ``"1"``, ... in file order.
    out
        The CSV to write: ``mbid,composition,gap_expt_eV,matbench_test_fold`` (gap in eV,
        fold from :func:`matbench_folds`), ``\\r\\n`` line ends, as in the reference copy.

    Raises
    ------
    DatasetError
        The JSON cannot be read or does not have the expected columns and rows.
    """
    try:
        with bz2.open(source, "rt", encoding="utf-8") as f:
            table = json.load(f)
        ids, comps, gaps = table["mbid"], table["composition"], table["gap expt"]
        keys = list(ids)
        if keys != [str(i) for i in range(len(keys))] or not (
            list(comps) == keys and list(gaps) == keys
        ):
            raise ValueError("rows are not keyed 0, 1, ... in order in every column")
        rows = [(str(ids[k]), str(comps[k]), float(gaps[k])) for k in keys]
    except (OSError, EOFError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"{source}: not a readable matbench_expt_gap JSON: {exc}") from exc
    folds = matbench_folds(len(rows))
    with open(out, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["mbid", "composition", "gap_expt_eV", "matbench_test_fold"])
        for (mbid, comp, gap), fold in zip(rows, folds):
            writer.writerow([mbid, comp, repr(gap), int(fold)])


def _fcc_sites(frac: np.ndarray, tol: float = 1e-3) -> bool:
    """True if fractional coordinates sit on the ideal sites of a 3x3x3 fcc supercell.

    Sites are multiples of 1/6 (to within ``tol``, fractional) whose three indices have
    the same parity sum for every atom (an fcc lattice, whatever its origin), all distinct.
    """
    x = np.asarray(frac, dtype=float) * 6.0
    k = np.rint(x)
    if x.size == 0 or np.max(np.abs(x - k)) > 6.0 * tol:
        return False
    k = np.mod(k, 6).astype(int)
    if len(set((k.sum(axis=1) % 2).tolist())) != 1:
        return False
    return len({tuple(v) for v in k.tolist()}) == len(k)


def mlearn_records_from_alignn(
    entries: Sequence[Mapping[str, Any]], n_train: int
) -> list[dict[str, Any]]:
    """Rebuild mlearn training records from ALIGNN's mlearn ``id_prop.json`` entries.

    ALIGNN (usnistgov/alignn, ``alignn/examples/sample_data_ff/mlearn_data/<El>/
    id_prop.json``) converted each mlearn record into ``{"jid", "atoms": {"lattice_mat",
    "coords" (fractional), "elements", ...}, "total_energy" (eV/atom), "forces",
    "stresses"}``, training entries first. This inverts that conversion for the first
    ``n_train`` entries (263 for Ni, 262 for Cu), as described in ``shared/data/README.md``:

    - ``outputs.energy`` (eV, total) = ``total_energy`` (eV/atom) x number of atoms;
    - ``outputs.forces`` (eV/Å) and ``outputs.virial_stress`` (kBar, VASP sign and
      mlearn's component order) = ``forces`` and ``stresses``, unchanged;
    - ``structure``: a pymatgen-style dict with ``lattice.matrix`` = ``lattice_mat``
      (rows, Å), site ``abc`` = ``coords`` and ``xyz`` = ``abc · matrix`` (Å);
    - ``tag`` = ``"train"``; ``description`` names the ALIGNN entry;
    - ``group`` is **inferred** (the original is lost): volume per atom above 1.3 x the
      bulk value (the median over the ``n_train`` entries) -> ``Surface``; 107 atoms ->
      ``Vacancy``; 108 atoms on ideal fcc sites (within 1e-3 fractional) ->
      ``Elastic``; otherwise ``AIMD-NVT``. These rules give the recorded group for all
      31 Ni and 31 Cu test entries.

    Parameters
    ----------
    entries
        The ALIGNN entries, in file order (at least ``n_train``).
    n_train
        Number of leading entries that are training entries.

    Returns
    -------
    list of dict
        mlearn records ``{"structure", "num_atoms", "element", "group", "outputs",
        "tag", "description"}``; ``json.dump`` of this list reproduces the reference
        ``mlearn/{Ni,Cu}/training.json`` byte for byte.

    Raises
    ------
    DatasetError
        Fewer than ``n_train`` entries, or an entry without the expected fields.
    """
    if len(entries) < n_train:
        raise DatasetError(f"expected at least {n_train} ALIGNN entries, got {len(entries)}")
    parsed = []
    for i, entry in enumerate(entries[:n_train]):
        try:
            atoms = entry["atoms"]
            lattice = [[float(v) for v in row] for row in atoms["lattice_mat"]]
            coords = [[float(v) for v in row] for row in atoms["coords"]]
            elements = [str(e) for e in atoms["elements"]]
            if atoms.get("cartesian", False):
                raise ValueError("coords are Cartesian; expected fractional")
            n = len(elements)
            if len(coords) != n or np.shape(lattice) != (3, 3):
                raise ValueError("atoms.coords / atoms.lattice_mat have the wrong shape")
            parsed.append((entry, lattice, coords, elements, n))
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(f"ALIGNN entry {i}: malformed: {exc}") from exc
    vpa = [abs(float(np.linalg.det(np.array(lat)))) / n for _, lat, _, _, n in parsed]
    bulk = float(np.median(vpa))
    records = []
    for (entry, lattice, coords, elements, n), v in zip(parsed, vpa):
        if v > 1.3 * bulk:
            group = "Surface"
        elif n == 107:
            group = "Vacancy"
        elif n == 108 and _fcc_sites(np.array(coords)):
            group = "Elastic"
        else:
            group = "AIMD-NVT"
        lat = np.array(lattice)
        sites = [
            {
                "species": [{"element": el, "occu": 1}],
                "abc": abc,
                "xyz": np.dot(abc, lat).tolist(),
                "label": el,
            }
            for el, abc in zip(elements, coords)
        ]
        records.append(
            {
                "structure": {
                    "@module": "pymatgen.core.structure",
                    "@class": "Structure",
                    "charge": 0,
                    "lattice": {"matrix": lattice},
                    "sites": sites,
                },
                "num_atoms": n,
                "element": sorted(set(elements))[0] if elements else "",
                "group": group,
                "outputs": {
                    "energy": entry["total_energy"] * n,
                    "forces": entry["forces"],
                    "virial_stress": entry["stresses"],
                },
                "tag": "train",
                "description": (
                    "reconstructed from usnistgov/alignn mlearn_data id_prop.json "
                    f"(entry jid {entry['jid']}); group inferred, original description "
                    "not available"
                ),
            }
        )
    return records


# --------------------------------------------------------------------------------------
# Datasets
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CompositionTable:
    """A composition -> property table with its official cross-validation folds.

    Attributes
    ----------
    ids
        Row identifiers (e.g. ``"mb-expt-gap-0001"``).
    compositions
        Formula strings (e.g. ``"Ag(AuS)2"``, ``"Cu1.8S1"``; fractional stoichiometry allowed).
    targets
        (n,) float64 target values, in ``unit``.
    folds
        (n,) int64: the official test fold (0 .. n_folds-1) of each row.
    target_name
        Name of the target (``"gap_expt"``).
    unit
        Unit of ``targets`` (``"eV"``).
    """

    ids: list[str]
    compositions: list[str]
    targets: np.ndarray
    folds: np.ndarray
    target_name: str = "gap_expt"
    unit: str = "eV"

    def __post_init__(self) -> None:
        targets = np.array(self.targets, dtype=np.float64)
        folds = np.array(self.folds, dtype=np.int64)
        n = len(self.ids)
        if not (len(self.compositions) == n and targets.shape == (n,) and folds.shape == (n,)):
            raise ValueError(
                f"CompositionTable: ids ({n}), compositions ({len(self.compositions)}), "
                f"targets {targets.shape} and folds {folds.shape} must have the same length"
            )
        targets.setflags(write=False)
        folds.setflags(write=False)
        object.__setattr__(self, "ids", list(self.ids))
        object.__setattr__(self, "compositions", list(self.compositions))
        object.__setattr__(self, "targets", targets)
        object.__setattr__(self, "folds", folds)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def n_folds(self) -> int:
        """Number of cross-validation folds."""
        return int(self.folds.max()) + 1 if len(self) else 0

    def split(self, fold: int) -> tuple[np.ndarray, np.ndarray]:
        """Row indices ``(train, test)`` of one official fold.

        Train on every row whose fold is not ``fold``; test on the rows whose fold is
        ``fold``. Report the mean error over all folds.

        Raises
        ------
        ConfigError
            ``fold`` is not one of 0 .. n_folds-1.
        """
        if isinstance(fold, bool) or not isinstance(fold, (int, np.integer)) or not (
            0 <= fold < self.n_folds
        ):
            raise ConfigError(f"fold must be an integer in 0..{self.n_folds - 1}, got {fold!r}")
        test = self.folds == fold
        return np.flatnonzero(~test), np.flatnonzero(test)


def _choice(dataset: str, option: str, value: Any, valid: Sequence[str]) -> str:
    if value is None:
        raise ConfigError(f"{dataset}: option {option!r} is required; one of {', '.join(valid)}")
    text = str(value).strip()
    for v in valid:
        if text.lower() == v.lower():
            return v
    raise ConfigError(
        f"{dataset}: unknown {option} {value!r}; valid values are {', '.join(valid)}"
    )


def _mlearn_relpath(element: str | None = None, split: str | None = None) -> str:
    el = _choice("mlearn", "element", element, MLEARN_ELEMENTS)
    if isinstance(split, str) and split.strip().lower() == "training":
        split = "train"
    sp = _choice("mlearn", "split", split, tuple(MLEARN_SPLITS))
    return f"mlearn/{el}/{MLEARN_SPLITS[sp]}"


def _perov5_relpath(split: str | None = None) -> str:
    return f"perov_5/{_choice('perov_5', 'split', split, PEROV5_SPLITS)}.csv"


def _load_mlearn(element: str | None = None, split: str | None = None) -> list[Atoms]:
    """mlearn (Zuo et al. 2020): DFT energies (eV), forces (eV/Å), stresses (eV/Å³, ASE)."""
    from .io import read

    return read(fetch(_mlearn_relpath(element, split)))


def _load_matbench_expt_gap() -> CompositionTable:
    """Matbench ``matbench_expt_gap``: composition -> experimental band gap (eV), 5 folds."""
    file = fetch("matbench_expt_gap/matbench_expt_gap.csv")
    ids, comps, gaps, folds = [], [], [], []
    header = ["mbid", "composition", "gap_expt_eV", "matbench_test_fold"]
    with open(file, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        first = next(reader, None)
        if first != header:
            raise DatasetError(f"{file}: expected the header {','.join(header)}, got {first}")
        for line, row in enumerate(reader, start=2):
            try:
                mbid, comp, gap, fold = row
                gaps.append(float(gap))
                folds.append(int(fold))
            except ValueError as exc:
                raise DatasetError(f"{file}: line {line}: malformed row {row}: {exc}") from exc
            ids.append(mbid)
            comps.append(comp)
    return CompositionTable(ids, comps, np.array(gaps), np.array(folds),
                            target_name="gap_expt", unit="eV")


_CIF_INFO_KEYS = ("spacegroup", "unit_cell", "occupancy")


def _load_perov_5(split: str | None = None) -> list[Atoms]:
    """perov_5 (CDVAE's split of Castelli's cubic perovskites), 5-atom periodic cells.

    ``info``: ``material_id`` (int), ``formula`` (str), ``heat_all`` and ``heat_ref``
    (heats of formation, eV per 5-atom cell), ``dir_gap`` and ``ind_gap`` (eV). The CIF
    reader's own ``spacegroup``/``unit_cell``/``occupancy`` entries are dropped.
    No ``info["energy"]`` is set: these are formation energies, not total energies.
    """
    import ase.io

    file = fetch(_perov5_relpath(split))
    out: list[Atoms] = []
    with open(file, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        for i, row in enumerate(reader):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    atoms = ase.io.read(io.StringIO(row["cif"]), format="cif")
                for key in _CIF_INFO_KEYS:
                    atoms.info.pop(key, None)
                if "spacegroup_kinds" in atoms.arrays:
                    del atoms.arrays["spacegroup_kinds"]
                mid = row["material_id"].strip()
                atoms.info["material_id"] = int(mid) if mid.lstrip("-").isdigit() else mid
                atoms.info["formula"] = row["formula"]
                for key in ("heat_all", "heat_ref", "dir_gap", "ind_gap"):
                    atoms.info[key] = float(row[key])
            except (KeyError, ValueError, TypeError, AttributeError, IndexError) as exc:
                raise DatasetError(f"{file}: row {i}: cannot parse: {exc}") from exc
            out.append(atoms)
    return out


def _load_aspirin_gfn2() -> list[Atoms]:
    """aspirin_gfn2: 1000 MD frames of aspirin with GFN2-xTB energy (eV) and forces (eV/Å).

    Available only through ``ML4MS_DATA_DIR`` (no public URL). Read and validated by
    :func:`ml4ms.data.read`, like every other file.
    """
    from .io import read

    return read(fetch("aspirin_gfn2/aspirin_gfn2xtb.extxyz"), format="extxyz")


@dataclass(frozen=True)
class _Dataset:
    loader: Callable[..., Any]
    relpath: Callable[..., str]
    options: tuple[str, ...]


#: The datasets :func:`load` knows, by name.
DATASETS: dict[str, _Dataset] = {
    "mlearn": _Dataset(_load_mlearn, _mlearn_relpath, ("element", "split")),
    "matbench_expt_gap": _Dataset(
        _load_matbench_expt_gap, lambda: "matbench_expt_gap/matbench_expt_gap.csv", ()
    ),
    "perov_5": _Dataset(_load_perov_5, _perov5_relpath, ("split",)),
    "aspirin_gfn2": _Dataset(
        _load_aspirin_gfn2, lambda: "aspirin_gfn2/aspirin_gfn2xtb.extxyz", ()
    ),
}


def _dataset(name: str, options: Mapping[str, Any]) -> _Dataset:
    ds = DATASETS.get(name)
    if ds is None:
        raise ConfigError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")
    extra = sorted(set(options) - set(ds.options))
    if extra:
        accepted = ", ".join(ds.options) if ds.options else "none"
        raise ConfigError(
            f"{name}: unknown option(s) {', '.join(extra)}; accepted options: {accepted}"
        )
    return ds


def load(name: str, **options: Any) -> list[Atoms] | CompositionTable:
    """Load a public dataset, from ``$ML4MS_DATA_DIR``, the cache, or a download.

    Parameters
    ----------
    name
        ``"mlearn"``, ``"matbench_expt_gap"``, ``"perov_5"`` or ``"aspirin_gfn2"``.
    **options
        - ``mlearn``: ``element`` (``"Ni"``, ``"Cu"``, ``"Li"``, ``"Mo"``, ``"Si"``,
          ``"Ge"``) and ``split`` (``"train"`` or ``"test"``), both required;
        - ``perov_5``: ``split`` (``"val"`` or ``"test"``), required;
        - ``matbench_expt_gap``, ``aspirin_gfn2``: none.

    Returns
    -------
    list of ase.Atoms or CompositionTable
        - ``mlearn``: periodic cells with ``info["energy"]`` (eV, total),
          ``arrays["forces"]`` (eV/Å), ``info["stress"]`` (eV/Å³, ASE Voigt order and
          sign) and ``info["config_type"]`` (the mlearn group), read by
          :func:`ml4ms.data.io.read`;
        - ``matbench_expt_gap``: a :class:`CompositionTable` of 4,604 compositions with
          the experimental band gap in eV and the official Matbench v0.1 folds;
        - ``perov_5``: 5-atom cubic perovskite cells with ``info["heat_all"]`` and
          ``info["heat_ref"]`` (eV per cell), ``info["dir_gap"]``, ``info["ind_gap"]`` (eV),
          ``info["material_id"]`` and ``info["formula"]``;
        - ``aspirin_gfn2``: 1000 isolated-molecule frames with ``info["energy"]`` (eV)
          and ``arrays["forces"]`` (eV/Å).

    Raises
    ------
    ConfigError
        Unknown dataset, option or option value (the valid ones are listed).
    DatasetError
        A file cannot be found, downloaded or verified (see :func:`fetch`).
    """
    return _dataset(name, options).loader(**options)


def path(name_or_relpath: str | os.PathLike, **options: Any) -> Path:
    """Local path of a dataset's file, fetching it if needed.

    Parameters
    ----------
    name_or_relpath
        A dataset name (with the same ``options`` as :func:`load`), giving the file
        :func:`load` reads, e.g. ``path("mlearn", element="Si", split="test")``; or a path
        relative to the data directory, e.g. ``"perov_5/val.csv"``.
    **options
        Dataset options (only with a dataset name).

    Returns
    -------
    pathlib.Path
        See :func:`fetch`.
    """
    key = str(name_or_relpath)
    if key in DATASETS:
        return fetch(_dataset(key, options).relpath(**options))
    if options:
        raise ConfigError(f"options {sorted(options)} are only accepted with a dataset name")
    return fetch(key)
