"""``ml4ms featurize``: descriptors of a dataset to a file, with labels."""

from __future__ import annotations

import numpy as np

from ml4ms.cli import main
from ml4ms.data import datasets


def test_featurize_a_dataset_spec_to_npz_with_labels(tmp_path, data_dir, capsys):
    out = tmp_path / "si.npz"
    config = "{descriptor: composition, properties: [Electronegativity, AtomicWeight], stats: [mean, range]}"
    assert main(["featurize", config, "mlearn:Si:test", str(out)]) == 0
    assert "wrote 25 rows x 4 features of 25 structures" in capsys.readouterr().out
    with np.load(out) as f:
        assert f["features"].shape == (25, 4)
        assert list(f["feature_labels"])[0] == "MagpieData mean Electronegativity"
        images = datasets.load("mlearn", element="Si", split="test")
        np.testing.assert_allclose(f["energy"], [a.info["energy"] for a in images])
        assert f["forces"].shape == (1525, 3)
        np.testing.assert_allclose(f["features"][:, 0], 1.90)  # Pauling electronegativity of Si
        np.testing.assert_allclose(f["features"][:, 1], 0.0)   # one element: no range


def test_featurize_reads_a_yaml_file_and_rejects_unknown_descriptors(tmp_path, capsys):
    config = tmp_path / "d.yaml"
    config.write_text("descriptor: nonsense\n")
    assert main(["featurize", str(config), "mlearn:Si:test", str(tmp_path / "x.npz")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: descriptor must be one of soap, acsf")


def test_featurize_with_soap_per_atom_rows_equal_the_python_api(tmp_path, data_dir, capsys):
    from ml4ms.descriptors import SOAP

    out = tmp_path / "soap.npz"
    config = "{descriptor: soap, species: [Si], r_cut: 4.0, n_max: 3, l_max: 2, periodic: true}"
    assert main(["featurize", config, "mlearn:Si:test", str(out)]) == 0
    images = datasets.load("mlearn", element="Si", split="test")
    expected = SOAP(["Si"], r_cut=4.0, n_max=3, l_max=2, periodic=True).create(images)
    with np.load(out) as f:
        assert f["features"].shape == (1525, 18)
        np.testing.assert_allclose(f["features"], np.concatenate(list(expected)))
        assert f["structure_index"][-1] == 24
