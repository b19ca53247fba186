"""ml4ms.data.io against a real PostgreSQL server (ASE's ``postgresql://`` databases).

A session fixture starts a throwaway PostgreSQL cluster (``initdb`` into a temporary
directory, trust authentication, listening only on 127.0.0.1 on a free port) and stops
and removes it afterwards. The server binaries are required: the fixture fails, not
skips, when they are missing (CI installs the ``postgresql`` package). References are
independent of the reader: ASE's EMT calculator labels the structures.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.emt import EMT

from ml4ms.data.io import read, write
from ml4ms.errors import DataError, FileFormatError

DB_NAME = "ml4ms_test"
_SERVER_BINARIES = ("initdb", "pg_ctl", "postgres", "createdb")
_TIMEOUT = 60  # seconds, for each server command


# ----------------------------------------------------------------------------- server


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", path.parent.name)) or (0,)


def _postgres_bin_dir() -> Path:
    """The directory holding initdb/pg_ctl/postgres/createdb: pg_ctl's on PATH, then
    the newest /usr/lib/postgresql/*/bin (Debian and Ubuntu keep them off PATH)."""
    candidates = []
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(os.path.realpath(on_path)).parent)
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key, reverse=True)
    for directory in candidates:
        if all(os.access(directory / name, os.X_OK) for name in _SERVER_BINARIES):
            return directory
    pytest.fail(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres, createdb) not found on PATH "
        "or under /usr/lib/postgresql/*/bin; install them (Debian/Ubuntu: "
        "`apt-get install postgresql`) to run the PostgreSQL tests",
        pytrace=False,
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(args: list[str], as_postgres: bool, log: Path | None = None) -> None:
    """Run a server command (as the ``postgres`` user when we are root: the server
    refuses to run as root); fail with its output if it fails."""
    if as_postgres:
        args = ["runuser", "-u", "postgres", "--", *args]
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    try:
        proc = subprocess.run(
            args,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        output = f"{type(err).__name__}: {err}"
    else:
        if proc.returncode == 0:
            return
        output = f"exit status {proc.returncode}\n{proc.stdout}{proc.stderr}"
    if log is not None and log.exists():
        output += f"\n--- server log {log} ---\n{log.read_text(errors='replace')[-4000:]}"
    pytest.fail(f"`{' '.join(args)}` failed: {output}", pytrace=False)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of an empty database on a throwaway PostgreSQL server, for this session."""
    bin_dir = _postgres_bin_dir()
    as_postgres = os.geteuid() == 0
    # Not pytest's tmp_path: its root is private to the current user, and the server
    # may run as `postgres`. The socket path must stay short (about 100 bytes).
    root = Path(tempfile.mkdtemp(prefix="ml4ms-pg-"))
    data, sockets, log = root / "data", root / "sockets", root / "server.log"
    port = _free_port()
    started = False
    try:
        sockets.mkdir()
        if as_postgres:
            for path in (root, sockets):
                shutil.chown(path, "postgres", "postgres")
        _run(
            [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
             "-E", "UTF8", "--locale=C", "--no-sync"],
            as_postgres,
        )
        with open(data / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write(
                f"\nlisten_addresses = '127.0.0.1'\nport = {port}\n"
                f"unix_socket_directories = '{sockets}'\n"
                # A throwaway cluster: durability is not needed, speed is.
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            )
        started = True  # from here on, always try to stop it
        _run(
            [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "30",
             "start"],
            as_postgres,
            log,
        )
        _run(
            [str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
             DB_NAME],
            as_postgres,
            log,
        )
        yield f"postgresql://postgres@127.0.0.1:{port}/{DB_NAME}"
    finally:
        try:
            if started:
                stop = [str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-t", "30",
                        "stop", "-m", "fast"]
                if as_postgres:
                    stop = ["runuser", "-u", "postgres", "--", *stop]
                # No pytest.fail here: a teardown failure must not hide the test's own.
                subprocess.run(
                    stop, stdin=subprocess.DEVNULL, capture_output=True, timeout=_TIMEOUT,
                    check=False,
                )
        finally:
            shutil.rmtree(root, ignore_errors=True)


# ----------------------------------------------------------------------------- data


def _cu_cells() -> list[Atoms]:
    """EMT-labelled Cu cells: 2 rattled bulk cells, 3 strained ones (calculator kept)."""
    images = []
    for k in range(5):
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 1, 1))
        if k >= 2:
            strain = np.eye(3) + 0.01 * np.array([[k, 1, 0], [1, -k, 2], [0, 2, 0.5 * k]])
            atoms.set_cell(atoms.cell.array @ strain, scale_atoms=True)
        atoms.rattle(0.05, seed=k)
        atoms.calc = EMT()
        atoms.get_potential_energy()
        atoms.get_forces()
        atoms.get_stress()
        atoms.info["config_type"] = "bulk" if k < 2 else "strained"
        images.append(atoms)
    return images


def _molecule() -> Atoms:
    """An EMT-labelled, non-periodic H2O: energy and forces, no stress."""
    atoms = molecule("H2O")
    atoms.rattle(0.02, seed=7)
    atoms.calc = EMT()
    atoms.get_potential_energy()
    atoms.get_forces()
    atoms.info["config_type"] = "molecule"
    return atoms


def _assert_same(out: Atoms, ref: Atoms) -> None:
    """Exact equality of the structure and of its labels with the EMT results."""
    np.testing.assert_array_equal(out.numbers, ref.numbers)
    np.testing.assert_array_equal(out.positions, ref.positions)
    np.testing.assert_array_equal(out.cell.array, ref.cell.array)
    np.testing.assert_array_equal(out.pbc, ref.pbc)
    results = ref.calc.results
    assert out.calc is None
    assert out.info["energy"] == results["energy"]
    np.testing.assert_array_equal(out.arrays["forces"], results["forces"])
    if "stress" in results:
        assert out.info["stress"].shape == (6,)
        np.testing.assert_array_equal(out.info["stress"], results["stress"])
    else:
        assert "stress" not in out.info
    assert out.info["config_type"] == ref.info["config_type"]


@pytest.fixture(scope="module")
def dataset(postgres_url: str) -> tuple[str, list[Atoms]]:
    """The session database holding 5 Cu cells then the molecule, written by ml4ms."""
    images = [*_cu_cells(), _molecule()]
    assert read(postgres_url) == []  # a fresh database: the row ids below are 1..6
    write(postgres_url, images)
    return postgres_url, images


@pytest.fixture
def fresh_url(postgres_url: str) -> str:
    """URL of a new, empty database on the session server (for tests that append)."""
    import psycopg2

    name = f"ml4ms_{uuid.uuid4().hex[:12]}"
    con = psycopg2.connect(postgres_url)
    try:
        con.autocommit = True  # CREATE DATABASE cannot run inside a transaction
        with con.cursor() as cur:
            cur.execute(f"CREATE DATABASE {name}")
    finally:
        con.close()
    return f"{postgres_url.rsplit('/', 1)[0]}/{name}"


# ----------------------------------------------------------------------------- tests


def test_write_then_read_round_trips_exactly(dataset):
    url, images = dataset
    out = read(url)
    assert len(out) == len(images)
    for got, ref in zip(out, images):
        _assert_same(got, ref)
    # The labels really are in the database: a second, independent connection sees them.
    assert [a.info["energy"] for a in read(url, format="postgresql")] == [
        a.calc.results["energy"] for a in images
    ]


def test_select_filters_rows(dataset):
    url, images = dataset
    out = read(url, select="config_type=bulk")
    assert len(out) == 2
    for got, ref in zip(out, images[:2]):
        _assert_same(got, ref)
    strained = read(url, select={"config_type": "strained"})
    assert [a.info["energy"] for a in strained] == [
        a.calc.results["energy"] for a in images[2:5]
    ]
    assert read(url, select="config_type=liquid") == []


def test_index_slices_the_rows(dataset):
    url, images = dataset
    _assert_same(read(url, index=-1)[0], images[-1])
    _assert_same(read(url, index=2)[0], images[2])
    sliced = read(url, index="1:5:2")
    assert len(sliced) == 2
    _assert_same(sliced[0], images[1])
    _assert_same(sliced[1], images[3])
    # The index applies to the rows matched by `select`, in id order.
    _assert_same(read(url, index=-1, select="config_type=strained")[0], images[4])
    with pytest.raises(DataError, match="out of range"):
        read(url, index=6)


def test_require_stress_names_url_row_and_field(dataset):
    url, _ = dataset
    assert len(read(url, index=":5", require=("stress",))) == 5  # the Cu cells have it
    with pytest.raises(DataError) as info:
        read(url, require=("stress",))
    err = info.value
    assert (err.source, err.index, err.field) == (url, 6, "stress")  # row id 6: H2O
    text = str(err)
    assert text.startswith(f"{url}: structure 6: stress: "), text
    assert "\n" not in text


def test_password_is_redacted_from_errors(dataset):
    url, _ = dataset
    # Trust authentication ignores the password, so the read itself succeeds.
    with_password = url.replace("postgres@", "postgres:s3cret-pw@", 1)
    assert with_password != url
    assert len(read(with_password, select="config_type=bulk")) == 2
    with pytest.raises(DataError) as info:
        read(with_password, require="stress")
    text = str(info.value)
    assert "s3cret-pw" not in text, text
    assert text.startswith(f"{url}: structure 6: stress: "), text


def test_wrong_port_is_one_clear_line(postgres_url):
    port = _free_port()  # nothing listens there
    url = re.sub(r":\d+/", f":{port}/", postgres_url.replace("postgres@", "postgres:pw@", 1))
    redacted = url.replace("postgres:pw@", "postgres@", 1)
    for action in (lambda: read(url), lambda: write(url, _molecule())):
        with pytest.raises(FileFormatError) as info:
            action()
        assert isinstance(info.value, OSError)
        text = str(info.value)
        assert text.startswith(f"{redacted}: "), text
        assert ":pw@" not in text, text
        assert "\n" not in text and "Traceback" not in text, text
        assert "OperationalError" in text and str(port) in text, text


def test_failed_write_leaves_no_rows(fresh_url):
    """A database URL is appended to in one transaction: all rows or none."""
    good, bad = _cu_cells()[:2]
    bad.info["config_type"] = "nul\x00byte"  # PostgreSQL text cannot hold NUL
    with pytest.raises(FileFormatError) as info:
        write(fresh_url, [good, bad])
    text = str(info.value)
    assert text.startswith(f"{fresh_url}: cannot write to the ASE database: "), text
    assert "NUL" in text, text  # the server's reason, not a secondary error
    assert read(fresh_url) == []


def test_write_commits_once_at_the_end(fresh_url, monkeypatch):
    """ASE commits every 5000 rows inside ``with db:``; ml4ms's write must not. Made
    visible at 3 rows by lowering ASE's default commit frequency to every row."""
    from ase_db_backends._sqlite import SQLite3Database

    original = SQLite3Database.managed_connection

    def commit_every_row(self, commit_frequency=1):
        return original(self, commit_frequency)

    monkeypatch.setattr(SQLite3Database, "managed_connection", commit_every_row)
    *good, bad = _cu_cells()[:3]
    bad.info["config_type"] = "nul\x00byte"
    with pytest.raises(FileFormatError, match="NUL"):
        write(fresh_url, [*good, bad])
    assert read(fresh_url) == []
    write(fresh_url, good)  # a good write still commits
    out = read(fresh_url)
    assert len(out) == 2
    for got, ref in zip(out, good):
        _assert_same(got, ref)
