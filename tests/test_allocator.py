"""Process-wide malloc settings applied by ``import ml4ms`` (see ml4ms._allocator)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def _run_fresh(code: str, **env: str) -> str:
    """Last line printed by ``code`` in a new interpreter, with only ``env`` among the settings."""
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("ML4MS_TUNE_MALLOC", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")}
    environment.update(env)
    out = subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True,
                         text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def _applied_in_fresh_process(**env: str) -> bool:
    return _run_fresh("import ml4ms, ml4ms._allocator as a; print(a._applied)", **env) == "True"


@pytest.mark.skipif(not GLIBC, reason="the settings exist in glibc only")
def test_import_applies_the_settings_under_glibc():
    assert _applied_in_fresh_process()


def test_the_environment_can_switch_it_off():
    assert not _applied_in_fresh_process(ML4MS_TUNE_MALLOC="0")


def test_glibc_own_variables_win():
    assert not _applied_in_fresh_process(MALLOC_MMAP_THRESHOLD_="65536")


@pytest.mark.skipif(not GLIBC, reason="page-fault counts of glibc's heap")
def test_repeated_soap_evaluations_stop_faulting_pages():
    """The reason for the settings: with them, evaluating the same cell again touches no new
    memory; without them every evaluation faults in its temporaries afresh."""
    code = """
import resource, ml4ms
from ase.build import bulk
from ml4ms.descriptors import SOAP
si = bulk("Si", "diamond", a=5.43, cubic=True).repeat(2)
soap = SOAP(species=["Si"], r_cut=5.0, n_max=8, l_max=6, sigma=0.5, periodic=True)
for _ in range(3):
    soap.create(si)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    soap.create(si)
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5)
"""
    faults = {setting: float(_run_fresh(code, ML4MS_TUNE_MALLOC=setting, OMP_NUM_THREADS="1"))
              for setting in ("1", "0")}
    assert faults["1"] < 0.2 * faults["0"], faults
