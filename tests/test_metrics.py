import numpy as np
import pytest

from competition.metrics import accuracy, average_precision_at_k, map_at_k, map_at_k_labels, top_k_indices


def test_average_precision_is_reciprocal_rank_within_top_3():
    assert average_precision_at_k("a", ["a", "b", "c"]) == 1.0
    assert average_precision_at_k("b", ["a", "b", "c"]) == 0.5
    assert average_precision_at_k("c", ["a", "b", "c"]) == pytest.approx(1 / 3)
    # A label outside the top 3 scores nothing, even if it is predicted fourth.
    assert average_precision_at_k("d", ["a", "b", "c", "d"]) == 0.0


def test_map_at_3_hand_computed():
    # ranks 1, 2, none, 3 -> (1 + 1/2 + 0 + 1/3) / 4
    truth = ["a", "b", "c", "d"]
    predictions = [["a", "x", "y"], ["x", "b", "y"], ["x", "y", "z"], ["x", "y", "d"]]
    assert map_at_k_labels(truth, predictions) == pytest.approx((1 + 0.5 + 0 + 1 / 3) / 4)


def test_map_at_k_from_scores_matches_label_lists():
    rng = np.random.default_rng(0)
    scores = rng.random((50, 7))
    truth = rng.integers(0, 7, 50)
    lists = [list(row) for row in top_k_indices(scores, 3)]
    assert map_at_k(truth, scores) == pytest.approx(map_at_k_labels(list(truth), lists))


def test_ties_break_towards_lower_label_index():
    scores = np.array([[0.2, 0.4, 0.4, 0.0], [0.25, 0.25, 0.25, 0.25]])
    assert top_k_indices(scores, 3).tolist() == [[1, 2, 0], [0, 1, 2]]
    # Class 2 ties with class 1 but ranks second: 1/2. Class 3 is fourth in a four-way tie: 0.
    assert map_at_k(np.array([2, 3]), scores) == pytest.approx(0.25)


def test_accuracy_is_top_1():
    scores = np.array([[0.9, 0.1], [0.4, 0.6], [0.7, 0.3]])
    assert accuracy(np.array([0, 1, 1]), scores) == pytest.approx(2 / 3)


def test_map_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="1 true labels but 2 predictions"):
        map_at_k_labels(["a"], [["a"], ["b"]])


def test_map_at_3_with_fewer_than_3_classes():
    # Two classes: the ranking has two places, a miss at the top still scores 1/2.
    assert map_at_k(np.array([0, 1]), np.array([[0.9, 0.1], [0.8, 0.2]])) == pytest.approx((1 + 0.5) / 2)
