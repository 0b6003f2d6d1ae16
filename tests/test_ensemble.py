"""Tests for competition.ensemble: geometric mean, OOF-fitted weights, the submission's JSON record."""

import json

import numpy as np
import pandas as pd
import pytest

from competition.modeling.inference import BlendError, geometric_mean
from competition.modeling.runs import Run
from competition.submit.ensemble import EnsembleError, blend_runs, fit_blend_weights


def softmax(logits):
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def log_loss(probs, ids):
    return -np.log(probs[np.arange(len(ids)), ids]).mean()


def test_geometric_mean_is_a_normalised_weighted_product():
    a = np.array([[0.5, 0.5], [0.9, 0.1]])
    b = np.array([[0.8, 0.2], [0.1, 0.9]])
    blend = geometric_mean([a, b], [3, 1])
    expected = a ** 0.75 * b ** 0.25
    np.testing.assert_allclose(blend, expected / expected.sum(axis=1, keepdims=True), rtol=1e-6)
    np.testing.assert_allclose(geometric_mean([a]), a, rtol=1e-6)
    with pytest.raises(BlendError, match="nothing to blend"):
        geometric_mean([])


def test_fitted_weights_recover_the_blend_the_labels_were_drawn_from():
    """Labels drawn from A^0.7 B^0.3: the best blend of A, B and a useless member C is (0.7, 0.3, 0)."""
    rng = np.random.default_rng(0)
    rows, classes = 20000, 6
    a, b, c = (softmax(2.0 * rng.standard_normal((rows, classes))) for _ in range(3))
    truth = geometric_mean([a, b], [0.7, 0.3])
    ids = np.array([rng.choice(classes, p=p / p.sum()) for p in truth.astype(np.float64)])
    weights = fit_blend_weights([a, b, c], ids)
    assert weights.sum() == pytest.approx(1.0) and (weights >= 0).all()
    np.testing.assert_allclose(weights, [0.7, 0.3, 0.0], atol=0.04)
    fitted_loss = log_loss(geometric_mean([a, b, c], weights), ids)
    assert fitted_loss < log_loss(geometric_mean([a, b, c]), ids)
    assert fitted_loss < min(log_loss(m, ids) for m in (a, b, c))


def test_a_member_that_is_better_everywhere_takes_all_the_weight():
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 5, 3000)
    good = softmax(3.0 * np.eye(5)[ids] + rng.standard_normal((3000, 5)))
    noise = softmax(rng.standard_normal((3000, 5)))
    np.testing.assert_allclose(fit_blend_weights([noise, good], ids), [0.0, 1.0], atol=0.02)


def write_run(root, name, index, labels, oof, test, cv):
    """A finished run as training leaves it, written through the run folder's own module."""
    run = Run(root / name)
    run.claim({"dataset": "demo", "labels": labels, "hash": name[-10:].rjust(10, "0"), "feature_key": "logmel-x"})
    run.write_scores({"metric": "map@3", "oof": cv})
    ids = index.train["label"].map({label: i for i, label in enumerate(labels)}).to_numpy()
    run.write_predictions("oof", index.train["fname"], oof, true_ids=ids)
    run.write_predictions("test", index.test["fname"], test)
    for fold in (0, 1):  # the saved folds: every other clip
        rows = np.arange(len(index.train)) % 2 == fold
        run.fold_dir(fold).mkdir(parents=True, exist_ok=True)
        run.write_fold_predictions(fold, "oof", index.train["fname"][rows], oof[rows])
        run.write_fold_done(fold, {"fold": fold, "score": cv})
    return run.dir


def test_blend_runs_writes_a_valid_submission_and_records_members_and_blend(workspace):
    from competition.datasets.registry import get_dataset

    dataset = get_dataset("demo")
    index = dataset.index(workspace.dataset_dir("demo"))
    labels = list(dataset.labels)
    rng = np.random.default_rng(2)
    ids = index.train["label"].map(dataset.label_to_id).to_numpy()
    informed = softmax(4.0 * np.eye(len(labels))[ids] + rng.standard_normal((len(ids), len(labels))))
    runs = [write_run(workspace.runs, "run-good", index, labels, informed,
                      softmax(rng.standard_normal((len(index.test), len(labels)))), 0.9),
            write_run(workspace.runs, "run-noise", index, labels, softmax(rng.standard_normal(informed.shape)),
                      softmax(rng.standard_normal((len(index.test), len(labels)))), 0.1)]
    csv_path = blend_runs(workspace, runs, "blend")
    record = json.loads(csv_path.with_suffix(".json").read_text())
    assert [m["run"] for m in record["members"]] == ["run-good", "run-noise"]
    assert [m["cv_score"] for m in record["members"]] == [0.9, 0.1]
    weights = [m["weight"] for m in record["members"]]
    assert sum(weights) == pytest.approx(1.0) and weights[0] > 0.9
    assert record["weights"] == "fitted" and record["cv_score"] == record["cv_score_fitted_weights"]
    assert record["cv_score_fitted_weights"] >= record["cv_score_equal_weights"]
    assert len(pd.read_csv(csv_path)) == len(index.test)
    equal = json.loads(blend_runs(workspace, runs, "equal", weights="equal").with_suffix(".json").read_text())
    assert [m["weight"] for m in equal["members"]] == [0.5, 0.5]


def test_blend_runs_refuses_runs_on_other_clips(workspace):
    from competition.datasets.registry import get_dataset

    dataset = get_dataset("demo")
    index = dataset.index(workspace.dataset_dir("demo"))
    labels = list(dataset.labels)
    uniform = np.full((len(index.train), len(labels)), 1 / len(labels))
    test = np.full((len(index.test), len(labels)), 1 / len(labels))
    first = write_run(workspace.runs, "a", index, labels, uniform, test, 0.1)
    fewer = index.train.iloc[1:]
    shifted = type(index)(fewer, index.test)
    second = write_run(workspace.runs, "b", shifted, labels, uniform[1:], test, 0.1)
    with pytest.raises(EnsembleError, match="clips differ"):
        blend_runs(workspace, [first, second], "x")


def test_fitted_weights_are_scored_out_of_fold():
    """Member a is right on fold 0 and noise on fold 1, member b the other way round: in sample, the
    weights look fine everywhere; fitted on the other fold, each fold gets the wrong member."""
    from competition.metrics import map_at_k
    from competition.submit.ensemble import out_of_fold_blend

    rng = np.random.default_rng(3)
    ids = rng.integers(0, 6, 400)
    folds = np.arange(400) % 2
    good = softmax(4.0 * np.eye(6)[ids] + rng.standard_normal((400, 6)))
    noise = softmax(rng.standard_normal((400, 6)))
    a = np.where((folds == 0)[:, None], good, noise)
    b = np.where((folds == 1)[:, None], good, noise)
    in_sample = map_at_k(ids, geometric_mean([a, b], fit_blend_weights([a, b], ids)))
    out_of_fold = map_at_k(ids, out_of_fold_blend([a, b], ids, folds))
    assert out_of_fold < in_sample - 0.2


def test_the_blend_record_quotes_the_out_of_fold_score(workspace):
    from competition.datasets.registry import get_dataset

    dataset = get_dataset("demo")
    index = dataset.index(workspace.dataset_dir("demo"))
    labels = list(dataset.labels)
    rng = np.random.default_rng(0)
    shape_train, shape_test = (len(index.train), len(labels)), (len(index.test), len(labels))
    runs = [write_run(workspace.runs, name, index, labels, softmax(rng.standard_normal(shape_train)),
                      softmax(rng.standard_normal(shape_test)), 0.1) for name in ("r1", "r2")]
    record = json.loads(blend_runs(workspace, runs, "nested").with_suffix(".json").read_text())
    assert record["cv_score"] == record["cv_score_fitted_weights"]
    assert record["cv_score_fitted_weights"] != record["cv_score_fitted_weights_in_sample"]
