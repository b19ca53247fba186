"""Material features against hand-computed values for known compositions and crystals."""

import numpy as np
import pytest
from ase.build import bulk

from ml4ms.errors import ConfigError, DataError
from ml4ms.properties.features import MaterialFeaturizer, structure_features


def _column(featurizer, X, name):
    names = list(featurizer.get_feature_names_out())
    return X[:, names.index(name)]


def test_composition_blocks_of_fe2o3():
    f = MaterialFeaturizer().fit(["Fe2O3", "NaCl"])
    X = f.transform(["Fe2O3"])
    assert _column(f, X, "fraction Fe")[0] == pytest.approx(0.4)
    assert _column(f, X, "fraction O")[0] == pytest.approx(0.6)
    assert _column(f, X, "fraction Na")[0] == 0.0
    assert _column(f, X, "n elements")[0] == 2
    assert _column(f, X, "2-norm")[0] == pytest.approx(np.sqrt(0.4**2 + 0.6**2))
    # Fe [Ar]3d6 4s2, O [He]2s2 2p4: per formula unit s 2.0, p 2.4, d 2.4 electrons
    assert _column(f, X, "frac s valence electrons")[0] == pytest.approx(2.0 / 6.8)
    assert _column(f, X, "frac d valence electrons")[0] == pytest.approx(2.4 / 6.8)
    assert _column(f, X, "MagpieData mean Electronegativity")[0] == pytest.approx(0.4 * 1.83 + 0.6 * 3.44)
    assert X.shape[1] == len(f.get_feature_names_out())


def test_fractions_columns_are_the_training_elements_only():
    f = MaterialFeaturizer(blocks=["fractions"]).fit(["Fe2O3"])
    assert list(f.get_feature_names_out()) == ["fraction O", "fraction Fe"]
    # an element unseen in training has no column; the known ones still sum to < 1
    assert f.transform(["FeS"]).tolist() == [[0.0, 0.5]]


def test_structure_features_of_fcc_copper_and_rocksalt():
    cu = structure_features(bulk("Cu", "fcc", a=3.61) * (2, 2, 2))
    assert cu[0] == pytest.approx(3.61**3 / 4)            # volume per atom, Å³
    assert cu[3] == pytest.approx(3.61 / np.sqrt(2))       # nearest-neighbour distance
    assert cu[7] == 12 and cu[8] == 12                     # coordination
    assert cu[10] == 225 and cu[11] == 7                   # Fm-3m, cubic
    nacl = structure_features(bulk("NaCl", "rocksalt", a=5.64))
    assert nacl[1] == pytest.approx(2.165, abs=0.005)      # density of halite, g/cm³
    assert nacl[10] == 225


def test_structure_features_are_invariant_to_rotation_and_supercell():
    a = bulk("NaCl", "rocksalt", a=5.64, cubic=True)
    b = (a * (1, 2, 1)).copy()
    b.rotate(30, "z", rotate_cell=True)
    np.testing.assert_allclose(structure_features(a), structure_features(b), atol=1e-9)


def test_bad_structures_and_blocks():
    atoms = bulk("Cu", "fcc", a=3.61) * (2, 1, 1)
    atoms.positions[1] = atoms.positions[0] + 0.01
    with pytest.raises(DataError, match="overlapping"):
        structure_features(atoms, index=4)
    molecule = bulk("Cu", "fcc", a=3.61)
    molecule.pbc = False
    with pytest.raises(DataError, match="periodic cell"):
        structure_features(molecule)
    with pytest.raises(ConfigError, match="unknown block"):
        MaterialFeaturizer(blocks=["magic"]).fit(["Cu"])
    with pytest.raises(DataError, match="need structures"):
        MaterialFeaturizer(blocks=["structure"]).fit(["Cu"])


def test_soap_block_refuses_elements_it_was_not_fitted_with():
    f = MaterialFeaturizer(blocks=["soap"], soap={"n_max": 2, "l_max": 2}).fit([bulk("Cu", "fcc", a=3.61)])
    assert f.transform([bulk("Cu", "fcc", a=3.7)]).shape == (1, len(f.get_feature_names_out()))
    with pytest.raises(DataError, match="not in the training data"):
        f.transform([bulk("Ni", "fcc", a=3.52)])


def test_local_property_difference_tells_a_from_b_site():
    """SrTiO3 by hand (Pauling electronegativities Sr 0.95, Ti 1.54, O 3.44): Ti sees six O
    (1.90); O sees two Ti (1.90; Sr at a/sqrt2 is beyond 1.25 x a/2); Sr sees twelve O and
    eight Ti (a sqrt3/2 < 1.25 a/sqrt2): (12 x 2.49 + 8 x 0.59) / 20 = 1.73."""
    from ase import Atoms

    sites = [(0, 0, 0), (0.5, 0.5, 0.5), (0.5, 0.5, 0), (0.5, 0, 0.5), (0, 0.5, 0.5)]
    srtio3 = Atoms("SrTiO3", scaled_positions=sites, cell=[3.905] * 3, pbc=True)
    swapped = Atoms("TiSrO3", scaled_positions=sites, cell=[3.905] * 3, pbc=True)
    f = MaterialFeaturizer(blocks=["local_difference"], properties=["Electronegativity"]).fit([srtio3])
    mean, _, low, high, _ = f.transform([srtio3])[0]
    assert low == pytest.approx(1.73) and high == pytest.approx(1.90)
    assert mean == pytest.approx((1.73 + 4 * 1.90) / 5)
    # same composition, different site occupation: different features
    assert not np.allclose(f.transform([swapped]), f.transform([srtio3]))
