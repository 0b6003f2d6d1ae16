"""Tests for competition.batches: crops and tiling, TTA crops, mixup, SpecAugment masking, targets."""

from types import SimpleNamespace

import numpy as np
import pytest

from competition.config import WHOLE_CLIP, TrainConfig
from competition.modeling.batches import (
    class_balance_weights,
    fit_length,
    mixup,
    random_crops,
    shift_and_gain,
    soft_targets,
    spec_augment,
    training_batches,
    tta_crops,
    tta_starts,
    whole_clip_length,
)
from competition.modeling.inference import predict_clips


def fake_store(lengths, bins=4):
    """What batching reads of a FeatureStore: packed frames (frame i of clip c holds c*1000 + i), clip(),
    and the per-bin mean used as the mask fill."""
    frames = np.concatenate([c * 1000 + np.arange(n)[:, None] + np.zeros((1, bins)) for c, n in enumerate(lengths)])
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    return SimpleNamespace(frames=frames.astype(np.float32), mean=np.full(bins, -7.0, np.float32),
                           clip=lambda row: frames[starts[row]:starts[row] + lengths[row]])


def test_fit_length_crops_long_clips_and_tiles_short_ones():
    clip = np.arange(5, dtype=np.float32)[:, None]
    assert fit_length(clip, 3, start=1)[:, 0].tolist() == [1, 2, 3]
    assert fit_length(clip, 12)[:, 0].tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]
    assert fit_length(clip[:1], 4)[:, 0].tolist() == [0, 0, 0, 0]


def test_random_crops_are_contiguous_windows_of_their_own_clip():
    store = fake_store([50, 10, 3])
    batch = random_crops(store, np.array([0, 1, 2]), 8, np.random.default_rng(0))
    assert batch.shape == (3, 8, 4) and batch.dtype == np.float32
    first = batch[0, :, 0]
    assert (first // 1000 == 0).all() and (np.diff(first) == 1).all()  # a window of clip 0
    second = batch[1, :, 0]
    assert second[0] in (1000, 1001, 1002) and (np.diff(second) == 1).all()  # 10 frames: starts 0..2
    assert batch[2, :, 0].tolist() == [2000, 2001, 2002] * 2 + [2000, 2001]  # tiled


def test_tta_crops_cover_long_clips_and_give_short_clips_one_crop():
    assert tta_starts(100, 20, 5).tolist() == [0, 20, 40, 60, 80]
    assert tta_starts(10, 20, 5).tolist() == [0]
    assert tta_starts(100, 20, 1).tolist() == [40]  # one crop: the middle
    clips = [np.zeros((100, 3)), np.ones((10, 3)), np.full((21, 3), 2.0)]
    crops, owners = tta_crops(clips, 20, 5)
    assert crops.shape == (5 + 1 + 2, 20, 3)
    assert owners.tolist() == [0] * 5 + [1] + [2] * 2


class FrameCountingModel:
    """Stands in for a Keras model: for each input, how many frames it saw and the sum of its first bin,
    as a (batch, 2) output."""
    output_shape = (None, 2)

    def __init__(self):
        self.batch_shapes = []

    def __call__(self, x, training=False):
        self.batch_shapes.append(x.shape)
        return np.stack([np.full(len(x), x.shape[1], np.float32), x[:, :, 0].sum(axis=1)], axis=1)


def test_whole_clip_prediction_reads_each_clip_once_at_its_own_length_short_ones_tiled():
    assert whole_clip_length(100, 20) == 100 and whole_clip_length(7, 20) == 20
    clips = [np.arange(30.0)[:, None], np.ones((7, 1)), np.full((30, 1), 2.0), np.zeros((45, 1))]
    model = FrameCountingModel()
    probs = predict_clips(model, clips, 20, WHOLE_CLIP, batch_size=64)
    assert probs[:, 0].tolist() == [30, 20, 30, 45]  # every frame, in the clips' own order
    assert probs[:, 1].tolist() == [sum(range(30)), 20, 60, 0]  # the 7-frame clip tiled to one crop
    # One batch a length: the two 30-frame clips share one; a clip is never padded to another's length.
    assert sorted(shape[:2] for shape in model.batch_shapes) == [(1, 20), (1, 45), (2, 30)]
    # TTA crops read crops of the training length only.
    crops = FrameCountingModel()
    assert predict_clips(crops, clips, 20, 5)[:, 0].tolist() == [20, 20, 20, 20]


def test_mixup_blends_inputs_labels_and_weights_with_one_share_per_example():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((16, 6, 4)).astype(np.float32)
    y = np.eye(16, dtype=np.float32)
    w = np.linspace(0.5, 1.0, 16).astype(np.float32)
    mx, my, mw = mixup(x, y, w, 0.4, np.random.default_rng(2))
    assert mx.shape == x.shape and my.shape == y.shape and mw.shape == w.shape
    np.testing.assert_allclose(my.sum(axis=1), 1.0, rtol=1e-6)  # still a distribution
    mixed = 0
    for i in range(16):
        partners = [j for j in np.flatnonzero(my[i]) if j != i]
        if not partners:  # drawn as its own partner: unchanged
            np.testing.assert_allclose(mx[i], x[i], rtol=1e-6)
            continue
        (j,), share = partners, my[i, i]
        np.testing.assert_allclose(mx[i], share * x[i] + (1 - share) * x[j], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(mw[i], share * w[i] + (1 - share) * w[j], rtol=1e-5)
        mixed += 1
    assert mixed >= 12
    assert mixup(x, y, w, 0.0, rng)[0] is x  # alpha 0: no mixing


def test_spec_augment_masks_bands_with_the_fill_and_leaves_the_rest():
    x = np.zeros((64, 40, 12), np.float32) + 5.0
    fill = np.arange(12, dtype=np.float32) - 100
    out = spec_augment(x, fill, time_masks=2, freq_masks=2, fraction=0.2, rng=np.random.default_rng(3))
    assert out.shape == x.shape and (x == 5.0).all()  # the input is not changed in place
    masked = out != 5.0
    assert masked.any()
    np.testing.assert_array_equal(out[masked], np.broadcast_to(fill, out.shape)[masked])
    for example in masked:
        frames = np.flatnonzero(example.all(axis=1))  # whole frames masked by time masks
        assert len(frames) <= 2 * int(40 * 0.2)
        bins = np.flatnonzero(example.all(axis=0))
        assert len(bins) <= 2 * int(12 * 0.2)
        # every masked cell lies in a masked frame or a masked bin: masks are bands, not speckles
        assert (example == (example.all(axis=1)[:, None] | example.all(axis=0)[None, :])).all()
    assert spec_augment(x, fill, time_masks=0, freq_masks=0, fraction=0.2, rng=np.random.default_rng(3)) is x


def test_shift_and_gain_move_whole_spectra_along_bins_and_in_level():
    x = np.tile(np.arange(8, dtype=np.float32), (50, 5, 1))  # bin b holds the value b
    shifted = shift_and_gain(x, max_shift=3, gain_db=0.0, rng=np.random.default_rng(4))
    shifts = set()
    for example in shifted:
        assert (example == example[0]).all()  # every frame moved alike
        shift = int(4 - example[0, 4])  # bin 4 now holds what was s bins below
        assert abs(shift) <= 3
        np.testing.assert_array_equal(example[0], np.clip(np.arange(8) - shift, 0, 7))  # edge bins fill the gap
        shifts.add(shift)
    assert len(shifts) > 3
    louder = shift_and_gain(x, max_shift=0, gain_db=6.0, rng=np.random.default_rng(5))
    offsets = (louder - x)[:, 0, 0]
    np.testing.assert_allclose(louder - x, np.broadcast_to(offsets[:, None, None], x.shape), atol=1e-5)
    assert np.abs(offsets).max() <= 6.0 and offsets.std() > 1.0
    assert shift_and_gain(x, max_shift=0, gain_db=0.0, rng=np.random.default_rng(5)) is x


def test_soft_targets_smooth_only_the_rows_asked():
    targets = soft_targets(np.array([0, 2]), 4, np.array([0.0, 0.2]))
    np.testing.assert_allclose(targets, [[1, 0, 0, 0], [0.05, 0.05, 0.85, 0.05]], rtol=1e-6)


def test_class_balance_gives_every_class_the_same_total_weight():
    ids = np.array([0, 0, 0, 1, 2, 2])
    weights = class_balance_weights(ids, 4)
    totals = np.bincount(ids, weights, minlength=4)
    np.testing.assert_allclose(totals[:3], totals[0])
    np.testing.assert_allclose(weights.mean(), 1.0)


def test_training_batches_cover_the_epoch_once_and_repeat_with_the_seed():
    store = fake_store([30] * 10)
    settings = TrainConfig(batch_size=4, mixup_alpha=0.0, time_masks=1, freq_masks=1)
    targets = np.eye(10, dtype=np.float32)
    weights = np.ones(10, np.float32)

    def epoch(seed):
        return list(training_batches(store, np.arange(10), targets, weights, settings, 8, np.random.default_rng(seed)))

    batches = epoch(7)
    assert [len(x) for x, _, _ in batches] == [4, 4, 2]
    seen = np.concatenate([y.argmax(axis=1) for _, y, _ in batches])
    assert sorted(seen.tolist()) == list(range(10))
    for x, y, _ in batches:  # each crop comes from the clip its label names (masked cells aside)
        for crop, label in zip(x, y.argmax(axis=1)):
            values = crop[crop != -7.0]
            assert (values // 1000 == label).all()
    again = epoch(7)
    for (x1, y1, _), (x2, y2, _) in zip(batches, again):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(batches, epoch(8)))


@pytest.mark.parametrize("alpha", [0.2, 1.0])
def test_mixup_of_one_hot_targets_keeps_each_example_mostly_itself_or_its_partner(alpha):
    y = np.eye(8, dtype=np.float32)
    _, my, _ = mixup(np.zeros((8, 2, 2), np.float32), y, np.ones(8, np.float32), alpha, np.random.default_rng(0))
    assert ((my > 0).sum(axis=1) <= 2).all()
