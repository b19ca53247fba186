"""``ml4ms property fit / eval / predict / screen`` end to end on a small table."""

import csv
import json

import numpy as np
import pytest
from ase.data import chemical_symbols

from ml4ms.cli import main
from ml4ms.descriptors.elements import element_table

ELEMENTS = [3, 8, 9, 11, 12, 13, 14, 16, 17, 19, 20, 26, 29, 31, 33, 34, 35, 50, 53]


def _table(path, n, seed, with_target=True):
    rng = np.random.default_rng(seed)
    chi = np.asarray(element_table(["Electronegativity"]))[:, 0]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "formula"] + (["gap"] if with_target else []))
        for k in range(n):
            a, b = rng.choice(ELEMENTS, 2, replace=False)
            diff = abs(chi[a] - chi[b])
            gap = 0.0 if diff < 1.0 else 2.0 * (diff - 1.0)
            row = [f"r{k}", f"{chemical_symbols[a]}{chemical_symbols[b]}"]
            writer.writerow(row + ([f"{gap:.4f}"] if with_target else []))
    return path


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    root = tmp_path_factory.mktemp("property")
    train = _table(root / "train.csv", 240, 0)
    config = root / "gap.yaml"
    config.write_text(f"""
data: {{source: {train}, target: gap}}
model: {{type: tabular, max_iter: 40, learning_rate: 0.2, min_samples_leaf: 5}}
cv: {{folds: 3, seed: 1}}
importance: {{n_repeats: 1, top: 5}}
output: {root / 'run' / 'gap.ml4ms'}
""")
    assert main(["property", "fit", str(config)]) == 0
    return root


def test_fit_writes_model_metrics_and_report(fitted):
    run = fitted / "run"
    for name in ("gap.ml4ms", "metrics.json", "predictions.csv", "parity.png", "error_vs_sigma.png",
                 "importance.png", "report.html"):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    cv = metrics["cv"]
    assert len(cv["folds"]) == 3 and cv["protocol"]["folds_run"] == 3
    assert cv["overall"]["mae"] < 0.5 * np.mean(np.abs(_targets(fitted / "train.csv") - 1.0))
    assert 0.5 < cv["overall"]["calibration"]["within_1sigma"] <= 1.0
    assert cv["classification"]["roc_auc"] > 0.8
    assert len(metrics["importance"]) == 5
    rows = list(csv.DictReader(open(run / "predictions.csv")))
    assert len(rows) == 240 and set(rows[0]) == {"id", "target", "prediction", "sigma", "fold"}


def _targets(path):
    return np.array([float(r["gap"]) for r in csv.DictReader(open(path))])


def test_eval_json_predict_and_screen(fitted, tmp_path, capsys):
    model = fitted / "run" / "gap.ml4ms"
    test = _table(tmp_path / "test.csv", 60, 5)
    out = tmp_path / "eval.json"
    assert main(["property", "eval", str(model), str(test), "--json", str(out)]) == 0
    metrics = json.loads(out.read_text())
    assert {"mae", "rmse", "r2", "calibration", "classification"} <= set(metrics)
    candidates = _table(tmp_path / "candidates.csv", 30, 6, with_target=False)
    predictions = tmp_path / "p.csv"
    assert main(["property", "predict", str(model), str(candidates), "--output", str(predictions)]) == 0
    rows = list(csv.DictReader(open(predictions)))
    assert len(rows) == 30 and list(rows[0]) == ["id", "input", "prediction", "sigma"]
    assert all(float(r["sigma"]) > 0 for r in rows)
    ranked = tmp_path / "rank.csv"
    assert main(["property", "screen", str(model), str(candidates), "--acquisition", "ucb",
                 "--output", str(ranked)]) == 0
    scores = [float(r["score"]) for r in csv.DictReader(open(ranked))]
    assert scores == sorted(scores, reverse=True)
    top = next(csv.DictReader(open(ranked)))
    assert float(top["score"]) == pytest.approx(float(top["prediction"]) + 2 * float(top["sigma"]))


def test_bad_inputs_give_one_line_errors(fitted, tmp_path, capsys):
    model = fitted / "run" / "gap.ml4ms"
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("id,smiles\na,CCO\n")
    assert main(["property", "predict", str(model), str(wrong)]) == 1
    assert "no input column" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("formula,gap\nNaCl,1\nNa((Cl,2\n")
    assert main(["property", "eval", str(model), str(bad)]) == 1
    err = capsys.readouterr().err
    assert "line 3" in err and "Na((Cl" in err
    config = tmp_path / "c.yaml"
    config.write_text("data: {source: matbench_expt_gap}\nmodel: {type: tabular, trees: 5}\n")
    assert main(["property", "fit", str(config)]) == 1
    assert "unknown key(s) trees" in capsys.readouterr().err


def test_example_configs_validate_and_build():
    from pathlib import Path

    from ml4ms.config import load_fit_config
    from ml4ms.properties.workflow import PropertyRunConfig, build_property_model

    examples = sorted((Path(__file__).parents[2] / "examples" / "properties").glob("*.yaml"))
    assert {p.name for p in examples} >= {"expt_gap-tabular.yaml", "expt_gap-composition-net.yaml",
                                          "perov5-graph.yaml"}
    for path in examples:
        config = load_fit_config(path, schema=PropertyRunConfig)
        assert build_property_model(config.model).get_params()


def test_fit_a_composition_network_through_the_cli(tmp_path):
    train = _table(tmp_path / "train.csv", 60, 0)
    config = tmp_path / "net.yaml"
    config.write_text(f"""
data: {{source: {train}, target: gap}}
model: {{type: composition-net, d_model: 16, n_heads: 2, n_layers: 1, readout_hidden: 16, epochs: 2,
         batch_size: 16, progress: false}}
cv: {{folds: 2}}
output: {tmp_path / 'net' / 'net.ml4ms'}
""")
    assert main(["property", "fit", str(config)]) == 0
    metrics = json.loads((tmp_path / "net" / "metrics.json").read_text())
    assert len(metrics["cv"]["folds"]) == 2 and "importance" not in metrics
    out = tmp_path / "p.csv"
    assert main(["property", "predict", str(tmp_path / "net" / "net.ml4ms"), str(train), "--output", str(out)]) == 0
    assert len(list(csv.DictReader(open(out)))) == 60
