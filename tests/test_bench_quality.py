"""Tests for the benchmarks.quality package's bookkeeping (the benchmark itself trains for minutes:
make bench-quality)."""

import re
from dataclasses import replace

import numpy as np
import pytest
from tiny_models import ONE_CONV_ARCH

from benchmarks import SHARED_DATA
from benchmarks.quality.runner import run_quality_bench
from benchmarks.quality.scores import fold_scores
from benchmarks.quality.settings import ESC10, URBANSOUND8K, QualityPlan
from competition.config import DEFAULT_EXPERIMENTS
from competition.workspace import Workspace

# The tiny recipes train a one-convolution model: these tests check the bookkeeping.
pytestmark = pytest.mark.usefixtures("one_conv_arch")


def test_without_shared_data_it_says_so_and_trains_nothing(tmp_path, capsys):
    assert run_quality_bench(Workspace(tmp_path), shared=tmp_path / "no-such-shared" / "data") == {}
    assert "bench-quality skipped" in capsys.readouterr().out
    assert not (tmp_path / "runs").exists()


def test_fold_scores_name_train_test_directions_and_average_over_folds():
    true_ids = np.array([0, 1, 0, 1])
    probs = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.3, 0.6, 0.1], [0.3, 0.6, 0.1]])
    folds = np.array([1, 1, 2, 2])
    scores = fold_scores(true_ids, probs, folds, URBANSOUND8K)
    assert list(scores) == ["2->1", "1->2", "mean"]  # fold 1 held out: trained on fold 2
    assert scores["2->1"]["accuracy"] == 1.0 and scores["1->2"]["accuracy"] == 0.5
    assert scores["mean"]["accuracy"] == 0.75 and scores["1->2"]["map@3"] == 0.75
    assert ESC10.fold_name(3) == "fold 3"


def test_a_recipe_s_training_seed_is_a_train_change_and_a_fold_seed_only_moves_repeated_folds():
    from benchmarks.quality.bench import recipe_experiment
    from benchmarks.quality.settings import ESC50, FSD_SUBSET

    recipe = DEFAULT_EXPERIMENTS[0]
    plain = recipe_experiment(recipe, ESC50, epochs=120)
    reseeded = recipe_experiment(recipe, ESC50, epochs=120, seed=1)
    assert (plain.train.seed, reseeded.train.seed) == (0, 1)
    assert reseeded.folds == plain.folds and reseeded.hash != plain.hash
    # ESC-50's folds are its own: a fold seed there would only rename a run that trains the same.
    with pytest.raises(ValueError, match="esc50 uses its predefined folds"):
        recipe_experiment(recipe, ESC50, fold_seed=1)
    repeat = recipe_experiment(recipe, FSD_SUBSET, fold_seed=7)
    assert repeat.folds.seed == 7 and repeat.train.seed == 0
    # The plan's seeded candidates are those seeds on their twin's recipe, each its own run.
    label = "16 kHz (the copy's rate), 24 ms hop, 120 epochs, float32"
    plan = QualityPlan()

    def candidate(name):
        features, model, train = plan.esc50_candidates[name]
        return recipe_experiment(recipe, ESC50, features=features, model=model, **train)

    twin = candidate(label)
    hashes = {twin.hash}
    for seed in (1, 2):
        seeded = candidate(f"{label}, training seed {seed}")
        assert seeded.train.seed == seed and seeded.with_overrides(train={"seed": 0}).hash == twin.hash
        hashes.add(seeded.hash)
    assert len(hashes) == 3


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.skipif(not (SHARED_DATA / "esc50").is_dir(), reason="needs ../shared/data/esc50 beside the checkout")
def test_the_shared_esc10_copy_has_the_protocol_folds():
    from benchmarks.quality.data import protocol_index
    from competition.datasets.registry import get_dataset

    dataset = get_dataset("esc10")
    index = protocol_index(dataset, SHARED_DATA / "esc50", ESC10)
    assert len(index.train) == 400 and sorted(index.train["fold"].unique()) == list(ESC10.folds)


def test_only_picks_protocols_in_running_order_and_names_unknown_ones():
    from benchmarks.quality.runner import parse_only
    from benchmarks.quality.settings import PROTOCOLS
    from competition.errors import KitError

    assert parse_only(None) == list(PROTOCOLS) == ["fsd-subset", "transfer", "fsd-transfer", "esc50", "esc10",
                                                   "esc10-transfer", "urbansound8k"]
    assert parse_only("esc50, fsd-subset") == ["fsd-subset", "esc50"]
    with pytest.raises(KitError, match="unknown protocol.*esc-50.*known: fsd-subset"):
        parse_only("esc-50")


def test_every_protocol_fine_tuned_from_esc50_bases_runs_as_a_transfer():
    from benchmarks.quality.runner import TRANSFER_PROTOCOLS
    from benchmarks.quality.settings import BASES_WITHOUT, PROTOCOLS

    assert set(TRANSFER_PROTOCOLS) == set(BASES_WITHOUT) and set(BASES_WITHOUT) <= set(PROTOCOLS)


def test_repeated_folds_score_each_repeat_out_of_fold_with_mean_and_spread():
    import pandas as pd

    from benchmarks.quality.scores import repeat_scores
    from competition.datasets.folds import stratified_folds

    train = pd.DataFrame({"label": [f"l{i % 4}" for i in range(40)], "manually_verified": 1})
    first, second = stratified_folds(train, 5, 42).to_numpy(), stratified_folds(train, 5, 7).to_numpy()
    assert not np.array_equal(first, second)  # two repeats: other folds
    for folds in (first, second):  # stratified: every fold holds two clips of each label
        assert (pd.crosstab(folds, train["label"]) == 2).all().all()
    true_ids = np.arange(40) % 4
    right = np.eye(4)[true_ids]
    second_best = np.eye(4)[(true_ids + 1) % 4] * 0.6 + np.eye(4)[true_ids] * 0.4
    half = np.where((np.arange(40) < 20)[:, None], right, second_best)
    scores = repeat_scores(true_ids, {42: (right, first), 7: (half, second)})
    assert scores["seed 42"]["map@3"] == 1.0 and scores["seed 42"]["accuracy"] == 1.0
    assert scores["seed 7"]["map@3"] == pytest.approx(0.75) and scores["seed 7"]["accuracy"] == 0.5
    assert len(scores["seed 7"]["fold map@3"]) == 5
    assert scores["mean"] == {"map@3": pytest.approx(0.875), "accuracy": 0.75}
    assert scores["spread"] == pytest.approx(0.25) and scores["fold std"] > 0


def test_the_transfer_table_gives_each_row_s_gain_over_scratch_per_fold_in_points():
    from benchmarks.quality.settings import TRANSFER
    from benchmarks.quality.tables import transfer_gains, transfer_table

    def row(a, b, **extra):
        return {"2->1": {"accuracy": a}, "1->2": {"accuracy": b}, "mean": {"accuracy": (a + b) / 2}, **extra}

    rows = {"scratch: r": row(0.60, 0.64, train_seconds=10), "transfer: same recipe": row(0.70, 0.62, train_seconds=9),
            "transfer: 90 epochs": row(0.66, 0.70, epochs=90)}
    gains = transfer_gains(rows, "scratch: r", TRANSFER)
    assert gains["transfer: same recipe"] == pytest.approx({"2->1": 0.10, "1->2": -0.02, "mean": 0.04})
    assert gains["scratch: r"] == {"2->1": 0.0, "1->2": 0.0, "mean": 0.0}
    table = transfer_table(rows, "scratch: r", TRANSFER).splitlines()
    assert table[0].split()[:4] == ["recipe", "2->1", "1->2", "mean"] and "+2->1" in table[0]
    assert table[2].split()[-5:] == ["+10.0", "-2.0", "+4.0", "60", "9"]
    assert table[3].split()[-2] == "90"  # a row's own epochs
    rows["scratch + transfer: a blend whose name is longer than the first column is wide"] = row(0.7, 0.7)
    lines = transfer_table(rows, "scratch: r", TRANSFER).splitlines()
    assert len({len(line) for line in lines}) == 1  # the columns stay aligned under their headers


def test_the_training_seed_table_gives_each_seed_s_gain_over_its_own_scratch_and_the_mean():
    from benchmarks.quality.tables import training_seed_table

    accuracy = {0: {"scratch": 0.60, "": 0.62, " (2-epoch bases)": 0.66},
                1: {"scratch": 0.64, "": 0.63, " (2-epoch bases)": None}}
    lines = training_seed_table(accuracy, ["", " (2-epoch bases)"]).splitlines()
    assert lines[0].split() == ["training", "seed", "scratch", "transfer", "gain", "transfer", "(2-epoch", "bases)",
                                "gain"]
    assert lines[1].split() == ["0", "0.6000", "0.6200", "+2.0", "0.6600", "+6.0"]
    assert lines[2].split() == ["1", "0.6400", "0.6300", "-1.0", "-", "-"]  # against its own seed's scratch
    assert len(lines) == 3  # no mean while a seed's run is missing
    accuracy[1][" (2-epoch bases)"] = 0.70
    lines = training_seed_table(accuracy, ["", " (2-epoch bases)"], {"scratch": 0.65, "": 0.70}).splitlines()
    assert lines[3].split() == ["mean", "0.6200", "0.6250", "+0.5", "0.6800", "+6.0"]
    # max - min over the seeds, in points: gains +2.0 and -1.0 are 3.0 apart, +6.0 and +6.0 none
    assert lines[4].split() == ["spread,", "points", "4.0", "1.0", "3.0", "4.0", "0.0"]
    assert lines[5].split() == ["blend", "0.6500", "0.7000", "+5.0", "-", "-"]  # over the scratch seeds' blend
    assert len({len(line) for line in lines}) == 1


def test_the_esc50_base_trains_on_every_clip_but_one_check_clip_per_class():
    import pandas as pd

    from benchmarks.quality.bases import esc50_base_index
    from competition.datasets.spec import Index

    train = pd.DataFrame({"fname": [f"{i}.wav" for i in range(30)], "label": [f"c{i % 3}" for i in range(30)],
                          "fold": [1 + i // 6 for i in range(30)]})
    base = esc50_base_index(Index(train, train.iloc[:0])).train
    checks = base[base["fold"] == 1]
    assert sorted(checks["label"]) == ["c0", "c1", "c2"] and set(train.loc[checks.index, "fold"]) == {1}
    assert (base["fold"] == 2).sum() == 27 and (train["fold"] == 1).sum() == 6  # the input is left as it was


def test_the_base_check_counts_check_clips_cut_from_a_training_clip_s_recording():
    import pandas as pd

    from benchmarks.quality.bases import check_siblings
    from competition.datasets.spec import Index

    train = pd.DataFrame({"fname": [f"{i}.wav" for i in range(6)], "fold": [1, 1, 1, 2, 2, 2],
                          "source_id": ["a", "b", "", "a", "a", ""]})
    assert check_siblings(Index(train, train.iloc[:0])) == (1, 2)  # "a": one check clip, two training clips
    train["source_id"] = ["a", "b", "c", "d", "e", "f"]
    assert check_siblings(Index(train, train.iloc[:0])) == (0, 0)


def _fake_shared(tmp_path, tiny_competition):
    """A stand-in for ../shared: ESC-50's layout, and the two conversion scripts writing tiny copies."""
    import shutil
    import textwrap

    from layouts import make_esc50, make_urbansound8k

    shared = tmp_path / "shared"
    make_esc50(shared / "data" / "esc50")
    sources = {"urbansound8k": make_urbansound8k(tmp_path / "us8k", folds_with_audio=(1, 2)),
               "fsdkaggle2018-subset": shutil.copytree(tiny_competition, tmp_path / "fsd")}
    (shared / "bin").mkdir()
    for name, script in (("urbansound8k", "urbansound8k-wav"), ("fsdkaggle2018-subset", "fsdkaggle2018-subset-wav")):
        (shared / "data" / name).mkdir()
        (shared / "bin" / script).write_text(textwrap.dedent(f"""
            import shutil, sys
            shutil.copytree({str(sources[name])!r}, sys.argv[1], dirs_exist_ok=True)
            """))
    return shared / "data"


def test_finished_only_trains_nothing_names_what_is_left_and_only_replaces_its_own_tables(
        tmp_path, tiny_competition, capsys):
    import json

    shared = _fake_shared(tmp_path, tiny_competition)
    workspace = Workspace(tmp_path / "kit")
    results = run_quality_bench(workspace, shared=shared, only=["fsd-subset", "transfer", "esc50"], finished_only=True)
    out = capsys.readouterr().out
    assert set(results) == {"fsd-subset", "transfer", "esc50"} and all(rows == {} for rows in results.values())
    assert out.index("FSDKaggle2018 subset") < out.index("transfer from an ESC-50 base") < out.index("ESC-50 (at 16")
    assert "fold seeds 42 and 7" in out and "nothing finished" in out and "base not trained" in out
    assert "bench-fsd-subset-logmel-cnn-" in out and "bench-esc50-base-logmel-cnn-" in out  # left out, named
    # Every view of the default blend has its own ESC-50 base for the transferred blend.
    assert all(f"base not trained: {recipe.stem}" in out and f"bench-esc50-base-{recipe.stem}-" in out
               for recipe in DEFAULT_EXPERIMENTS)
    assert "ESC-10" not in out and "bench-quality:" in out
    assert not [path for path in workspace.runs.glob("bench-*") if path.is_dir()]  # nothing trained
    # The leakage guard finds UrbanSound8K where the kit keeps it.
    assert (workspace.dataset_dir("urbansound8k") / "UrbanSound8K" / "metadata" / "UrbanSound8K.csv").is_file()

    # --recipes: the recipes left out are only read (none finished here), so nothing trains either.
    run_quality_bench(workspace, shared=shared, only=["esc50"], train_only={"no-such-recipe"})
    assert "left out (--finished-only or --recipes): bench-esc50-logmel-cnn-" in capsys.readouterr().out
    assert not [path for path in workspace.runs.glob("bench-*") if path.is_dir()]
    written = json.loads((workspace.runs / "bench-quality.json").read_text())
    assert set(written["tables"]) == {"fsd-subset", "transfer", "esc50"}  # the others' tables kept
    text = (workspace.runs / "bench-quality.txt").read_text()
    assert text.index("FSDKaggle2018 subset") < text.index("ESC-50 (at 16") and text.count("ESC-50 (at 16") == 1


def test_the_fsd_subset_is_the_demo_entry_on_the_labels_it_holds(tiny_competition, tmp_path):
    import shutil

    import pandas as pd

    from benchmarks.quality.data import protocol_dataset
    from benchmarks.quality.settings import FSD_SUBSET

    root = shutil.copytree(tiny_competition, tmp_path / "fsd")
    table = pd.read_csv(root / "train.csv")
    keep = table[table["label"].isin(sorted(set(table["label"]))[:3])]
    keep.to_csv(root / "train.csv", index=False)
    dataset = protocol_dataset(FSD_SUBSET, root)
    assert dataset.name == "fsd-subset" and dataset.metric == "map@3" and dataset.fold_rule == "stratified"
    assert set(dataset.labels) == set(keep["label"]) and len(dataset.labels) == 3


TINY_RECIPE = """
name = "{name}"
[features]
kind = "{kind}"
n_mels = 16
n_mfcc = 12
hop_length = 1024
[model]
arch = "{arch}"
width = 4
[train]
batch_size = 16
crop_seconds = 1.0
tta_crops = 2
mixup_alpha = 0.2
time_masks = 1
freq_masks = 1
""".replace("{arch}", ONE_CONV_ARCH)
# `make transfer`'s settings file for the transfer protocols: its own epochs and rate, so its run is told apart.
TINY_TRANSFER = """
name = "tiny-transfer"
[train]
epochs = 2
batch_size = 16
learning_rate = 0.0007
crop_seconds = 1.0
tta_crops = 2
"""


@pytest.mark.slow
def test_the_repeated_protocol_trains_every_recipe_on_the_same_folds_per_repeat(
        tmp_path, tiny_competition, capsys, monkeypatch):
    import json

    import pandas as pd

    from benchmarks.quality.bench import recipe_experiment
    from benchmarks.quality.settings import Protocol
    from competition.config import WHOLE_CLIP
    from competition.modeling.train import FoldTrainer

    predicted_on, validate = [], FoldTrainer.validate  # how many crops each held-out prediction used

    def validate_and_count(trainer, model, n_crops):
        predicted_on.append(n_crops)
        return validate(trainer, model, n_crops)

    monkeypatch.setattr(FoldTrainer, "validate", validate_and_count)

    recipes = []
    for name, kind in (("tiny-logmel", "logmel"), ("tiny-mfcc", "mfcc"), ("tiny-peer", "mfcc"), ("tiny-extra", "mfcc")):
        recipes.append(tmp_path / f"{name}.toml")
        recipes[-1].write_text(TINY_RECIPE.format(name=name, kind=kind))
    tiny = Protocol("fsd-subset", "FSD tiny", epochs=1, folds=(0, 1), seeds=(3, 4))
    plan = replace(QualityPlan(), kit=tuple(recipes[:2]), peer=recipes[2],
                   fsd_candidates={"wider": ({}, {"width": 6}, {})}, fsd_extra_views=(recipes[3],)).with_protocol(tiny)
    workspace = Workspace(tmp_path / "kit")
    results = run_quality_bench(workspace, shared=_fake_shared(tmp_path, tiny_competition), only=["fsd-subset"],
                                plan=plan)
    rows = results["fsd-subset"]
    assert list(rows) == ["kit: tiny-logmel + tiny-mfcc (blend)",
                          "kit: tiny-logmel + tiny-mfcc (blend, weights fitted out of fold)",
                          "kit: tiny-logmel", "peer: Zafar kernel (tiny-peer)",
                          "kit: tiny-mfcc", "candidate: tiny-logmel, wider", "zoo: tiny-extra",
                          "ablation: tiny-logmel without SpecAugment masking", "ablation: tiny-logmel without mixup",
                          "candidate blend: wider in place of tiny-logmel", "candidate blend: the blend + tiny-extra",
                          "ablation: tiny-logmel without TTA (1 crop)", "ablation: tiny-logmel on 5 TTA crops",
                          "ablation: tiny-logmel on the whole clip in one pass (no crops)"]
    # Each re-scoring predicts every held-out fold of both repeats its own way (the recipe's own is 2 crops);
    # training predicts each epoch's check on 1 crop and each fold's held-out clips on 2.
    assert {n: predicted_on.count(n) for n in (WHOLE_CLIP, 5)} == {WHOLE_CLIP: 4, 5: 4}
    # Each blend row is the blend of its members' runs: their training seconds add up.
    seconds = {name: scores["train_seconds"] for name, scores in rows.items() if "train_seconds" in scores}
    blend = "kit: tiny-logmel + tiny-mfcc (blend)"
    assert seconds[blend] == pytest.approx(seconds["kit: tiny-logmel"] + seconds["kit: tiny-mfcc"])
    assert seconds["candidate blend: the blend + tiny-extra"] == pytest.approx(
        seconds[blend] + seconds["zoo: tiny-extra"])
    assert seconds["candidate blend: wider in place of tiny-logmel"] == pytest.approx(
        seconds["candidate: tiny-logmel, wider"] + seconds["kit: tiny-mfcc"])
    for scores in rows.values():
        assert set(scores) >= {"seed 3", "seed 4", "mean", "spread", "fold std"}
        assert len(scores["seed 3"]["fold map@3"]) == 2
        assert scores["mean"]["map@3"] == pytest.approx((scores["seed 3"]["map@3"] + scores["seed 4"]["map@3"]) / 2)
    # Each repeat is its own run on its own saved folds, the same folds for every recipe.
    folds = {seed: pd.read_csv(workspace.folds / "fsd-subset" / f"stratified-k2-seed{seed}.csv") for seed in (3, 4)}
    assert not folds[3]["fold"].equals(folds[4]["fold"])
    for run_dir in workspace.runs.glob("bench-fsd-subset-*"):
        record = json.loads((run_dir / "config.json").read_text())
        assert record["params"]["folds"]["k"] == 2 and record["params"]["folds"]["seed"] in (3, 4)
        assert record["params"]["train"]["epochs"] == 1 and record["params"]["train"]["keep_epoch"] == "last"
    assert len(list(workspace.runs.glob("bench-fsd-subset-*"))) == 14  # 7 recipes x 2 repeats
    ablations = [json.loads((run_dir / "config.json").read_text())["params"]["train"]
                 for run_dir in workspace.runs.glob("bench-fsd-subset-tiny-logmel-*")]
    assert sum(train.get("mixup_alpha") == 0.0 for train in ablations) == 2  # one run per repeat
    assert sum(train.get("time_masks") == 0 and train.get("freq_masks") == 0 for train in ablations) == 2
    # The fitted blend is make ensemble's: each repeat's folds blended with weights fitted on the other folds.
    from competition.metrics import map_at_k
    from competition.modeling.runs import Run
    from competition.submit.ensemble import out_of_fold_blend

    views = [[p for p in workspace.runs.glob(f"bench-fsd-subset-{view}-*")
              if Run(p).config()["hash"] == recipe_experiment(recipe, tiny, fold_seed=3).hash]
             for view, recipe in (("tiny-logmel", recipes[0]), ("tiny-mfcc", recipes[1]))]
    assert [len(runs) for runs in views] == [1, 1]
    members = [Run(runs[0]).predictions("oof") for runs in views]
    expected = map_at_k(members[0].true_ids, out_of_fold_blend([m.probs for m in members], members[0].true_ids,
                                                               folds[3]["fold"].to_numpy()))
    assert rows["kit: tiny-logmel + tiny-mfcc (blend, weights fitted out of fold)"]["seed 3"]["map@3"] == \
        pytest.approx(expected)
    out = capsys.readouterr().out
    assert "target mean MAP@3 >= 0.93 and >= 5 points over Zafar's recipe: tiny-logmel + tiny-mfcc (blend)" in out
    assert "tiny-logmel + tiny-mfcc (blend, weights fitted out of fold) " in out
    assert "(fsd-subset: " in out and "s wall, this call)" in out
    assert "fsd-subset" in json.loads((workspace.runs / "bench-quality.json").read_text())["tables"]


def test_only_candidates_ahead_of_the_default_on_the_fsd_subset_are_confirmed_elsewhere():
    from benchmarks.quality.results import candidates_ahead

    def row(value):
        return {"mean": {"map@3": value, "accuracy": value}}

    candidates = {"wider": None, "longer": None, "finer": None, "unscored": None}
    rows = {"kit: logmel": row(0.87), "candidate: logmel, wider": row(0.88), "candidate: logmel, longer": row(0.87),
            "candidate: logmel, finer": row(0.80), "candidate: logmel, partial (seed 42 only)": row(0.99)}
    assert candidates_ahead(rows, "kit: logmel", candidates) == ["wider"]
    assert candidates_ahead({k: v for k, v in rows.items() if k != "kit: logmel"}, "kit: logmel", candidates) == []
    assert candidates_ahead({}, "kit: logmel", candidates) == []


@pytest.mark.slow
def test_the_transfer_protocol_blends_every_view_fine_tuned_from_its_own_base(tmp_path, tiny_competition,
                                                                               capsys):
    from pathlib import PurePath

    from benchmarks.quality.scores import train_seconds
    from benchmarks.quality.settings import TRANSFER
    from competition.modeling.runs import Run

    recipes = []
    for name, kind in (("tiny-logmel", "logmel"), ("tiny-mfcc", "mfcc")):
        recipes.append(tmp_path / f"{name}.toml")
        recipes[-1].write_text(TINY_RECIPE.format(name=name, kind=kind))
    (tmp_path / "tiny-transfer.toml").write_text(TINY_TRANSFER)
    plan = replace(QualityPlan(), kit=tuple(recipes), transfer_variants={"lr / 4": {"learning_rate": 0.00025}},
                   base_epochs=1, kit_transfer=tmp_path / "tiny-transfer.toml", transfer_features={}).with_protocol(
        replace(TRANSFER, epochs=1))
    workspace = Workspace(tmp_path / "kit")
    shared = _fake_shared(tmp_path, tiny_competition)
    rows = run_quality_bench(workspace, shared=shared, only=["transfer"], quick=True, plan=plan)["transfer"]
    blend = "tiny-logmel + tiny-mfcc (blend)"
    kit = "transfer: make transfer's settings (tiny-transfer.toml)"
    # The default recipe also with the fine-tuning variant (UrbanSound8K's) and `make transfer`'s settings,
    # from the same base.
    seed_one = ["scratch: tiny-logmel, training seed 1", "transfer: same recipe, training seed 1",
                "scratch: tiny-logmel, training seeds 0 + 1 (blend)",
                "transfer: same recipe, training seeds 0 + 1 (blend)"]
    assert list(rows) == ["scratch: tiny-logmel", "transfer: same recipe", "transfer: lr / 4", kit,
                          f"scratch: {blend}", f"transfer: {blend}", "scratch + transfer: 4 views (blend)",
                          "scratch + transfer: 4 views (blend, weights fitted out of fold)", *seed_one]
    assert rows[kit]["epochs"] == 2 and rows["transfer: same recipe"]["epochs"] == 1
    out = capsys.readouterr().out
    # The default view again with training seed 1: scratch, and the plain fine-tune from the same base.
    (scratch_one,) = [path for path in workspace.runs.glob("bench-urbansound8k-tiny-logmel-*")
                      if "-transfer-" not in path.name and Run(path).config()["params"]["train"]["seed"] == 1]
    assert Run(scratch_one).config().get("base_model") is None
    (transfer_one,) = [path for path in workspace.runs.glob("bench-urbansound8k-tiny-logmel-transfer-*")
                       if Run(path).config()["params"]["train"]["seed"] == 1]
    seed_table = out[out.index("with other training seeds"):].splitlines()[1:7]
    assert [line.split()[0] for line in seed_table] == ["training", "0", "1", "mean", "spread,", "blend"]
    scratch_acc, transfer_acc = (rows[name]["mean"]["accuracy"] for name in seed_one[:2])
    assert seed_table[2].split()[1:] == [f"{scratch_acc:.4f}", f"{transfer_acc:.4f}",
                                         f"{100 * (transfer_acc - scratch_acc):+.1f}"]
    gains = [transfer_acc - scratch_acc, rows["transfer: same recipe"]["mean"]["accuracy"]
             - rows["scratch: tiny-logmel"]["mean"]["accuracy"]]
    assert re.search(r"target on training seeds 0, 1 \(their mean, their blend\): transfer \d\.\d{4} (NOT )?met, "
                     r"gain " + re.escape(f"{100 * np.mean(gains):+.1f}"), out)
    # The seeds' blend: the geometric mean of both seeds' fine-tunes, against both seeds' scratch runs blended.
    pair = [Run(path).predictions("oof") for path in (transfer_one, *(
        path for path in workspace.runs.glob("bench-urbansound8k-tiny-logmel-transfer-*")
        if Run(path).config()["params"]["train"] == {**Run(transfer_one).config()["params"]["train"], "seed": 0}))]
    assert len(pair) == 2
    seeds_blend = np.exp(np.mean([np.log(np.maximum(m.probs, 1e-12)) for m in pair], axis=0))
    right = seeds_blend.argmax(axis=1) == pair[0].true_ids
    fold_of = np.array([int(PurePath(fname).name.split("-")[0]) // 1000 for fname in pair[0].fnames])
    assert rows[seed_one[3]]["mean"]["accuracy"] == pytest.approx(
        np.mean([right[fold_of == fold].mean() for fold in (1, 2)]))
    blend_gain = rows[seed_one[3]]["mean"]["accuracy"] - rows[seed_one[2]]["mean"]["accuracy"]
    assert f"transfer, seeds blended {rows[seed_one[3]]['mean']['accuracy']:.4f}" in out
    assert seed_table[5].split()[-1] == f"{100 * blend_gain:+.1f}"
    # The spread: how far the seed alone moved scratch's accuracy and the gain, in points.
    scratch_zero = rows["scratch: tiny-logmel"]["mean"]["accuracy"]
    assert seed_table[4].split()[2] == f"{100 * abs(scratch_acc - scratch_zero):.1f}"
    assert seed_table[4].split()[-1] == f"{100 * abs(gains[0] - gains[1]):.1f}"
    # One base per view, each trained with the leakage guard on, each fine-tuned into its own run.
    bases = sorted(path.name for path in workspace.runs.glob("bench-esc50-base-*"))
    assert len(bases) == 2 and all(name.endswith("-without-urbansound8k") for name in bases)
    assert "base: tiny-logmel on ESC-50" in out and "base: tiny-mfcc on ESC-50" in out
    assert "tiny-mfcc alone: scratch " in out and f"target: transfer: {blend} " in out
    runs = sorted((path for path in workspace.runs.glob("bench-urbansound8k-tiny-*-transfer-*")
                   if path != transfer_one), key=lambda path: Run(path).config()["params"]["train"]["learning_rate"])
    (kit_run,) = [path for path in runs if Run(path).config()["params"]["train"]["epochs"] == 2]
    variant, *transferred = [path for path in runs if path != kit_run]
    assert Run(variant).config()["base_model"] == Run(transferred[0]).config()["base_model"]
    assert Run(transfer_one).config()["base_model"] == Run(variant).config()["base_model"]
    # `make transfer`'s settings: the file's training (its epochs, its rate), the base's features and model,
    # the last epoch kept as in every row.
    kit_config = Run(kit_run).config()
    assert kit_config["experiment"] == "tiny-logmel" and kit_config["base_model"] == Run(variant).config()["base_model"]
    assert kit_config["params"]["train"]["keep_epoch"] == "last" and kit_config["params"]["model"]["width"] == 4
    assert {len(history) for history in Run(kit_run).histories().values()} == {2}
    transferred = sorted(transferred)
    assert len(transferred) == 2
    # The transferred blend is the geometric mean of the two fine-tuned views, scored per held-out fold.
    members = [Run(run_dir).predictions("oof") for run_dir in transferred]
    assert list(members[0].fnames) == list(members[1].fnames)
    probs = np.exp(np.mean([np.log(np.maximum(m.probs, 1e-12)) for m in members], axis=0))
    folds = np.array([int(PurePath(fname).name.split("-")[0]) // 1000 for fname in members[0].fnames])
    right = probs.argmax(axis=1) == members[0].true_ids
    expected = np.mean([right[folds == fold].mean() for fold in (1, 2)])
    assert rows[f"transfer: {blend}"]["mean"]["accuracy"] == pytest.approx(expected)
    assert rows[f"transfer: {blend}"]["train_seconds"] == pytest.approx(
        rows["transfer: same recipe"]["train_seconds"] + train_seconds([transferred[1]]))
    assert rows["scratch + transfer: 4 views (blend)"]["train_seconds"] == pytest.approx(
        rows[f"scratch: {blend}"]["train_seconds"] + rows[f"transfer: {blend}"]["train_seconds"])

    # Without --quick, bases on a longer schedule too: every view fine-tuned from its own longer base.
    plan = replace(plan, longer_base_epochs=(2,))
    rows = run_quality_bench(workspace, shared=shared, only=["transfer"], plan=plan)["transfer"]
    longer = " (2-epoch bases)"
    # The variant from the longer base too: a longer base may want another fine-tune.
    assert list(rows)[4:] == [f"transfer{longer}: same recipe", f"transfer{longer}: lr / 4",
                              f"transfer{longer}: make transfer's settings (tiny-transfer.toml)", f"scratch: {blend}",
                              f"transfer: {blend}",
                              "scratch + transfer: 4 views (blend)",
                              "scratch + transfer: 4 views (blend, weights fitted out of fold)",
                              f"transfer{longer}: {blend}", f"scratch + transfer{longer}: 4 views (blend)",
                              f"scratch + transfer{longer}: 4 views (blend, weights fitted out of fold)",
                              "scratch + every transfer: 6 views (blend)",
                              "scratch + every transfer: 6 views (blend, weights fitted out of fold)", *seed_one[:2],
                              f"transfer{longer}: same recipe, training seed 1", *seed_one[2:],
                              f"transfer{longer}: same recipe, training seeds 0 + 1 (blend)"]
    # The every-schedule blend is the six runs' geometric mean: the scratch views and both bases' fine-tunes.
    assert rows["scratch + every transfer: 6 views (blend)"]["train_seconds"] == pytest.approx(
        rows["scratch + transfer: 4 views (blend)"]["train_seconds"]
        + rows[f"transfer{longer}: {blend}"]["train_seconds"])
    base_epochs = {path: {len(h) for h in Run(path).histories().values()}
                   for path in workspace.runs.glob("bench-esc50-base-*")}
    assert sorted(map(min, base_epochs.values())) == [1, 1, 2, 2]
    assert re.search(r"2 epochs \(\d+ s\), accuracy", capsys.readouterr().out)
    from_longer = [Run(path).config()["base_model"] for path in workspace.runs.glob("bench-urbansound8k-*-transfer-*")]
    assert len(from_longer) == 10 and sum(str(Run(base).model_path(1)) in from_longer
                                          for base, epochs in base_epochs.items() if epochs == {2}) == 2
    # Fine-tuned from the default view's shorter base: same recipe, lr / 4, make transfer's settings, seed 1.
    assert from_longer.count(Run(transfer_one).config()["base_model"]) == 4


@pytest.mark.slow
def test_the_transfer_protocol_measures_the_default_recipe_on_other_features_against_its_own_scratch_run(
        tmp_path, tiny_competition, capsys, monkeypatch):
    import benchmarks.quality.transfer as transfer
    from benchmarks.quality.settings import TRANSFER
    from competition.modeling.runs import Run

    # Tiny runs score alike (nothing to tell a gain's reference by): each run's accuracy by what it is instead.
    def scored(run_dir, index, protocol):
        record = Run(run_dir).config()
        accuracy = {22050: 0.10, 16000: 0.30}[record["params"]["features"]["sample_rate"]]
        accuracy += 0.25 * bool(record.get("base_model"))
        scores = real_scores(run_dir, index, protocol)
        return {**scores, **{column: {"accuracy": accuracy} for column in ("2->1", "1->2", "mean")}}

    real_scores = transfer.run_scores
    monkeypatch.setattr(transfer, "run_scores", scored)
    recipe = tmp_path / "tiny-logmel.toml"
    recipe.write_text(TINY_RECIPE.format(name="tiny-logmel", kind="logmel"))
    (tmp_path / "tiny-transfer.toml").write_text(TINY_TRANSFER)
    features = {"sample_rate": 16000, "hop_length": 512}
    plan = replace(QualityPlan(), kit=(recipe,), transfer_variants={"lr / 4": {"learning_rate": 0.00025}},
                   base_epochs=1, longer_base_epochs=(), kit_transfer=tmp_path / "tiny-transfer.toml",
                   transfer_features={"16 kHz": (features, 2)}).with_protocol(replace(TRANSFER, epochs=1))
    workspace = Workspace(tmp_path / "kit")
    shared = _fake_shared(tmp_path, tiny_competition)
    quick = run_quality_bench(workspace, shared=shared, only=["transfer"], quick=True, plan=plan)["transfer"]
    assert not any("16 kHz" in name for name in quick)  # not with --quick
    capsys.readouterr()
    rows = run_quality_bench(workspace, shared=shared, only=["transfer"], plan=plan)["transfer"]
    out = capsys.readouterr().out
    own = ["scratch (16 kHz): tiny-logmel", "transfer (16 kHz): same recipe", "transfer (16 kHz): lr / 4",
           "scratch (16 kHz): tiny-logmel, training seed 1", "transfer (16 kHz): same recipe, training seed 1",
           "scratch (16 kHz): tiny-logmel, training seeds 0 + 1 (blend)",
           "transfer (16 kHz): same recipe, training seeds 0 + 1 (blend)"]
    assert list(rows)[-len(own):] == own and list(rows)[:len(quick)] == list(quick)

    def params(path):
        return Run(path).config()["params"]

    # Its base: the default recipe's on those features, on its own epochs, guard on; its scratch run and
    # fine-tunes (both seeds, the variant) on the same features, the fine-tunes from that base.
    bases = {params(path)["features"]["sample_rate"]: path for path in workspace.runs.glob("bench-esc50-base-*")}
    assert set(bases) == {22050, 16000} and bases[16000].name.endswith("-without-urbansound8k")
    assert {len(h) for h in Run(bases[16000]).histories().values()} == {2}
    assert params(bases[16000])["features"]["hop_length"] == 512
    runs = [path for path in workspace.runs.glob("bench-urbansound8k-tiny-logmel-*")
            if params(path)["features"]["sample_rate"] == 16000]
    fine_tunes = [path for path in runs if "-transfer-" in path.name]
    assert len(runs) == 5 and len(fine_tunes) == 3
    assert {Run(path).config()["base_model"] for path in fine_tunes} == {str(Run(bases[16000]).model_path(1))}
    assert all(Run(path).config().get("base_model") is None for path in runs if path not in fine_tunes)
    # Its own table: each gain is over the scratch run on the same features, not over the default's.
    section = out[out.index("the default recipe on 16 kHz (sample_rate 16000, hop_length 512)"):]
    assert "base: tiny-logmel on ESC-50" in section.splitlines()[1]
    line = next(line for line in section.splitlines() if line.startswith("transfer (16 kHz): lr / 4 "))
    assert line.split()[-6:-2] == ["0.5500", "+25.0", "+25.0", "+25.0"]
    assert "transfer (16 kHz): same recipe 0.5500 NOT met, gain +25.0 met" in section
    seed_rows = section[section.index("training seed "):].splitlines()
    assert seed_rows[2].split() == ["1", "0.3000", "0.5500", "+25.0"]
    assert "the default recipe (16 kHz) (tiny-logmel) with other training seeds" in section
    assert re.search(r"target on training seeds 0, 1 \(their mean, their blend\): transfer \(16 kHz\) ", section)


@pytest.mark.slow
def test_esc10_transfer_starts_from_bases_on_esc50_s_other_classes_without_esc10_s_recordings(
        tmp_path, tiny_competition, capsys):
    import pandas as pd

    from benchmarks.quality.settings import ESC10_TRANSFER
    from competition.datasets.esc50 import ESC10_LABELS
    from competition.modeling.runs import Run

    recipes = []
    for name, kind in (("tiny-logmel", "logmel"), ("tiny-mfcc", "mfcc")):
        recipes.append(tmp_path / f"{name}.toml")
        recipes[-1].write_text(TINY_RECIPE.format(name=name, kind=kind))
    (tmp_path / "tiny-transfer.toml").write_text(TINY_TRANSFER)
    plan = replace(QualityPlan(), kit=tuple(recipes), transfer_variants={"lower rate": {"learning_rate": 0.0005},
                                                                        "rehearsed": {"rehearsal_weight": 1.0}},
                   base_epochs=1, kit_transfer=tmp_path / "tiny-transfer.toml", training_seeds=()).with_protocol(
        replace(ESC10_TRANSFER, epochs=1))
    shared = _fake_shared(tmp_path, tiny_competition)
    # Every clip its own recording, but one clip outside ESC-10 cut from an ESC-10 clip's recording.
    meta = shared / "esc50" / "meta" / "esc50.csv"
    table = pd.read_csv(meta)
    table["src_file"] = 1000 + table.index
    sibling = table.index[~table["esc10"]][-1]
    table.loc[sibling, "src_file"] = table.loc[table.index[table["esc10"]][0], "src_file"]
    table.to_csv(meta, index=False)
    workspace = Workspace(tmp_path / "kit")
    rows = run_quality_bench(workspace, shared=shared, only=["esc10-transfer"], quick=True,
                             plan=plan)["esc10-transfer"]
    blend = "tiny-logmel + tiny-mfcc (blend)"
    # The default view also with the fine-tuning variants, then the blend from scratch against the blend transferred.
    assert list(rows) == ["scratch: tiny-logmel", "transfer: same recipe", "transfer: lower rate",
                          "transfer: rehearsed", "transfer: make transfer's settings (tiny-transfer.toml)",
                          f"scratch: {blend}", f"transfer: {blend}",
                          "scratch + transfer: 4 views (blend)", "scratch + transfer: 4 views (blend, weights fitted "
                                                                 "out of fold)"]
    captured = capsys.readouterr()
    assert "left out 1 train clip(s) of 1 recording(s) that esc10 also holds" in captured.err
    # The rehearsing variant trains again on the clips its base was trained on: never the sibling.
    assert f"rehearsal: {(~table['esc10']).sum() - 1} esc40-base clip(s) beside esc10's\n" in captured.err
    bases = sorted(workspace.runs.glob("bench-esc40-base-*"))
    assert len(bases) == 2 and all(path.name.endswith("-without-esc10") for path in bases)
    for base in bases:
        record = Run(base).config()
        assert record["excluded_sources"] == {"of": "esc10", "clips": 1, "sources": 1}
        assert len(record["labels"]) == 40 and not set(record["labels"]) & set(ESC10_LABELS)
        # Trained on the clips outside ESC-10, its one sibling left out; checked on one clip per class.
        summary = Run(base).fold_summary(1)
        assert summary["n_train"] + summary["n_val"] == (~table["esc10"]).sum() - 1
    out = captured.out
    assert "base: tiny-logmel on ESC-50's 40 classes outside esc10" in out
    assert "base trained without esc10's recordings (1 clips left out)" in out
    assert "target transfer mean accuracy >= 0.94: " in out and "and gain >=" not in out
    assert f"target: transfer: {blend} " in out
    transferred = sorted(workspace.runs.glob("bench-esc10-tiny-*-transfer-*"))
    # Each view's plain fine-tune from its own base, and the variant from the default view's base.
    logmel_base = next(str(Run(base).model_path(1)) for base in bases if "tiny-logmel" in base.name)
    assert sorted(Run(path).config()["base_model"] for path in transferred) == sorted(
        [str(Run(base).model_path(1)) for base in bases] + [logmel_base] * 3)
    for setting, value in (("learning_rate", 0.0005), ("rehearsal_weight", 1.0)):
        variant = [path for path in transferred if Run(path).config()["params"]["train"].get(setting) == value]
        assert len(variant) == 1 and Run(variant[0]).config()["base_model"] == logmel_base
    assert set(rows["transfer: same recipe"]) >= {f"fold {fold}" for fold in range(1, 6)}
    assert "not finished, so not scored here (the esc50 protocol trains them" in out

    # Once the ESC-50 protocol's runs finished: the plain fine-tune beside the default view's ESC-50 run.
    from benchmarks.quality.settings import ESC50

    plan = replace(plan, peer=recipes[1]).with_protocol(replace(ESC50, epochs=1))
    run_quality_bench(workspace, shared=shared, only=["esc50"], quick=True, plan=plan)
    rows = run_quality_bench(workspace, shared=shared, only=["esc10-transfer"], quick=True, plan=plan)["esc10-transfer"]
    beside = "transfer: same recipe + trained on esc50's classes: tiny-logmel: 2 views (blend)"
    assert list(rows)[5:7] == [beside, beside.replace("(blend)", "(blend, weights fitted out of fold)")]
    assert re.search(rf"{re.escape(beside.removeprefix('transfer: '))} \d\.\d{{4}} (NOT )?met", capsys.readouterr().out)


@pytest.mark.slow
def test_esc10_confirms_a_zoo_view_only_where_it_added_to_the_fsd_subset_blend(tmp_path, tiny_competition,
                                                                               capsys):
    import json

    recipes = {}
    for name, kind in (("tiny-logmel", "logmel"), ("tiny-mfcc", "mfcc"), ("tiny-peer", "mfcc"), ("tiny-extra", "mfcc")):
        recipes[name] = tmp_path / f"{name}.toml"
        recipes[name].write_text(TINY_RECIPE.format(name=name, kind=kind))
    plan = replace(QualityPlan(), kit=(recipes["tiny-logmel"], recipes["tiny-mfcc"]), peer=recipes["tiny-peer"],
                   fsd_extra_views=(recipes["tiny-extra"],), fsd_candidates={}, training_ablations={},
                   longer_schedules={}).with_protocol(replace(ESC10, epochs=1))
    workspace = Workspace(tmp_path / "kit")
    shared = _fake_shared(tmp_path, tiny_competition)
    blend, with_view = "kit: tiny-logmel + tiny-mfcc (blend)", "candidate blend: the blend + tiny-extra"

    def fsd_subset_scored(blend_map, with_view_map):
        path = workspace.runs / "bench-quality.json"
        written = json.loads(path.read_text()) if path.is_file() else {}
        written["fsd-subset"] = {name: {"mean": {"map@3": value}} for name, value in ((blend, blend_map),
                                                                                       (with_view, with_view_map))}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(written))

    fsd_subset_scored(0.90, 0.90)  # level with the blend there: not trained here
    rows = run_quality_bench(workspace, shared=shared, only=["esc10"], plan=plan)["esc10"]
    assert "zoo: tiny-extra" not in rows and with_view not in rows and blend in rows
    assert "not ahead of tiny-logmel on the FSD subset's finished repeats (or not scored there yet): the blend + " \
           "tiny-extra" in capsys.readouterr().out
    assert not list(workspace.runs.glob("bench-esc10-tiny-extra-*"))
    fsd_subset_scored(0.90, 0.91)  # ahead there: alone and in the blend here
    rows = run_quality_bench(workspace, shared=shared, only=["esc10"], plan=plan)["esc10"]
    assert rows[with_view]["train_seconds"] == pytest.approx(rows[blend]["train_seconds"]
                                                             + rows["zoo: tiny-extra"]["train_seconds"])
    assert "the blend + tiny-extra" not in capsys.readouterr().out.split("target mean accuracy")[-1]


@pytest.mark.slow
def test_fsd_transfer_fine_tunes_every_view_from_its_own_base_and_refuses_a_base_sharing_a_recording(
        tmp_path, tiny_competition, capsys):
    import json

    import pandas as pd

    from benchmarks.quality.bench import recipe_experiment
    from benchmarks.quality.settings import FSD_TRANSFER
    from competition.metrics import map_at_k
    from competition.modeling.runs import Run
    from competition.modeling.transfer import LeakageError

    recipes = {}
    for name, kind in (("tiny-logmel", "logmel"), ("tiny-mfcc", "mfcc"), ("tiny-peer", "mfcc")):
        recipes[name] = tmp_path / f"{name}.toml"
        recipes[name].write_text(TINY_RECIPE.format(name=name, kind=kind))
    tiny = replace(FSD_TRANSFER, epochs=1, folds=(0, 1), seeds=(3, 4))
    plan = replace(QualityPlan(), kit=(recipes["tiny-logmel"], recipes["tiny-mfcc"]), peer=recipes["tiny-peer"],
                   base_epochs=1, transfer_variants={"lr / 4": {"learning_rate": 0.0005}},
                   longer_base_epochs=(2,)).with_protocol(tiny)
    shared = _fake_shared(tmp_path, tiny_competition)
    # The competition's post-competition CSV names each clip's Freesound recording: none is an ESC-50 one.
    fnames = pd.read_csv(tiny_competition / "train.csv")["fname"]
    meta = shared / "fsdkaggle2018-meta" / "train_post_competition.csv"
    meta.parent.mkdir()
    sources = pd.DataFrame({"fname": fnames, "freesound_id": [5000 + i for i in range(len(fnames))]})
    sources.to_csv(meta, index=False)
    workspace = Workspace(tmp_path / "kit")
    rows = run_quality_bench(workspace, shared=shared, only=["fsd-transfer"], plan=plan)["fsd-transfer"]
    blend, longer = "tiny-logmel + tiny-mfcc (blend)", " (2-epoch bases)"
    fitted = "tiny-logmel + tiny-mfcc (blend, weights fitted out of fold)"
    assert list(rows) == ["peer: Zafar kernel (tiny-peer)", "scratch: tiny-logmel", "transfer: tiny-logmel",
                          "transfer: tiny-logmel, lr / 4", f"transfer{longer}: tiny-logmel", "scratch: tiny-mfcc",
                          "transfer: tiny-mfcc", f"transfer{longer}: tiny-mfcc",
                          f"scratch: {blend}", f"transfer: {blend}", f"transfer: {fitted}",
                          "scratch + transfer: 4 views (blend)",
                          "scratch + transfer: 4 views (blend, weights fitted out of fold)",
                          f"transfer{longer}: {blend}", f"transfer{longer}: {fitted}",
                          f"scratch + transfer{longer}: 4 views (blend)",
                          f"scratch + transfer{longer}: 4 views (blend, weights fitted out of fold)",
                          "scratch + every transfer: 6 views (blend)",
                          "scratch + every transfer: 6 views (blend, weights fitted out of fold)"]
    out = capsys.readouterr().out
    assert out.count("(no recording shared with fsd-subset)") == 4  # every base checked, both schedules
    assert "transfer: tiny-mfcc: " in out and " MAP@3 points over scratch: tiny-mfcc (seed 3 " in out
    assert "target mean MAP@3 >= 0.93" in out and f"transfer: {blend} " in out
    # Each view is fine-tuned, per repeat, from its own base of each schedule; the scratch runs are the
    # fsd-subset protocol's.
    bases = {(Run(path).config()["experiment"], Run(path).config()["params"]["train"]["epochs"]): path
             for path in workspace.runs.glob("bench-esc50-base-*")}
    assert sorted(bases) == [("tiny-logmel", 1), ("tiny-logmel", 2), ("tiny-mfcc", 1), ("tiny-mfcc", 2)]
    model_bases = {str(Run(path).model_path(1)): key for key, path in bases.items()}
    fine_tuned = {}
    for path in workspace.runs.glob("bench-fsd-subset-*-transfer-*"):
        record = Run(path).config()
        view, base_epochs = model_bases[record["base_model"]]
        assert view == record["experiment"]
        rate = record["params"]["train"]["learning_rate"]
        fine_tuned[(view, record["params"]["folds"]["seed"], rate, base_epochs)] = path
    # The variant only on the default view, per repeat, from the default schedule's base.
    default_rate = recipe_experiment(recipes["tiny-logmel"], tiny).train.learning_rate
    assert sorted(fine_tuned) == sorted([(view, seed, default_rate, epochs) for view in ("tiny-logmel", "tiny-mfcc")
                                         for seed in (3, 4) for epochs in (1, 2)]
                                        + [("tiny-logmel", seed, 0.0005, 1) for seed in (3, 4)])
    assert len([p for p in workspace.runs.glob("bench-fsd-subset-tiny-logmel-*") if "-transfer-" not in p.name]) == 2
    # The transferred blend of a repeat is the geometric mean of that repeat's fine-tuned views.
    members = [Run(fine_tuned[(view, 3, default_rate, 1)]).predictions("oof") for view in ("tiny-logmel", "tiny-mfcc")]
    probs = np.exp(np.mean([np.log(np.maximum(m.probs, 1e-12)) for m in members], axis=0))
    assert rows[f"transfer: {blend}"]["seed 3"]["map@3"] == pytest.approx(map_at_k(members[0].true_ids, probs))
    # The every-schedule blend: the scratch views and both schedules' fine-tunes, six runs of the repeat.
    scratch_runs = {Run(path).config()["experiment"]: path for path in workspace.runs.glob("bench-fsd-subset-tiny-*")
                    if "-transfer-" not in path.name and Run(path).config()["params"]["folds"]["seed"] == 3}
    six = [Run(scratch_runs[view]).predictions("oof") for view in ("tiny-logmel", "tiny-mfcc")] + [
        Run(fine_tuned[(view, 3, default_rate, epochs)]).predictions("oof")
        for epochs in (1, 2) for view in ("tiny-logmel", "tiny-mfcc")]
    six_probs = np.exp(np.mean([np.log(np.maximum(m.probs, 1e-12)) for m in six], axis=0))
    assert rows["scratch + every transfer: 6 views (blend)"]["seed 3"]["map@3"] == pytest.approx(
        map_at_k(six[0].true_ids, six_probs))
    from competition.submit.ensemble import out_of_fold_blend  # and with weights fitted out of fold

    folds = pd.read_csv(workspace.folds / "fsd-subset" / "stratified-k2-seed3.csv")["fold"].to_numpy()
    fitted_probs = out_of_fold_blend([m.probs for m in members], members[0].true_ids, folds)
    assert rows[f"transfer: {fitted}"]["seed 3"]["map@3"] == pytest.approx(map_at_k(members[0].true_ids,
                                                                                   fitted_probs))
    written = json.loads((workspace.runs / "bench-quality.json").read_text())
    assert "fsd-transfer" in written["tables"]
    # One clip of a recording the ESC-50 bases were trained on: they are refused, nothing is fine-tuned.
    esc50_sources = pd.read_csv(shared / "esc50" / "meta" / "esc50.csv")["src_file"]
    sources.loc[0, "freesound_id"] = int(esc50_sources.iloc[0])
    sources.to_csv(meta, index=False)
    with pytest.raises(LeakageError, match=r"trained on \d+ clip\(s\) of 1 recording\(s\) that fsd-subset also holds"):
        run_quality_bench(workspace, shared=shared, only=["fsd-transfer"], finished_only=True, plan=plan)


@pytest.mark.slow
def test_esc50_trains_every_view_on_the_longer_schedule_except_with_quick(tmp_path, tiny_competition, capsys):
    import json

    import pandas as pd

    from benchmarks.quality.settings import ESC50
    from competition.modeling.runs import Run

    recipes = {}
    for name, kind in (("tiny-logmel", "logmel"), ("tiny-mfcc", "mfcc"), ("tiny-peer", "mfcc")):
        recipes[name] = tmp_path / f"{name}.toml"
        recipes[name].write_text(TINY_RECIPE.format(name=name, kind=kind))
    plan = replace(QualityPlan(), kit=(recipes["tiny-logmel"], recipes["tiny-mfcc"]), peer=recipes["tiny-peer"],
                   training_ablations={}, longer_schedules={"2 epochs": {"epochs": 2}},
                   esc50_candidates={"width 6": ({}, {"width": 6}, {}), "hop 512": ({"hop_length": 512}, {}, {})}
                   ).with_protocol(replace(ESC50, epochs=1))
    workspace = Workspace(tmp_path / "kit")
    shared = _fake_shared(tmp_path, tiny_competition)

    def epochs_trained(view: str = "tiny-logmel") -> list[int]:
        return sorted(len(history) for path in workspace.runs.glob(f"bench-esc50-{view}-*")
                      for history in Run(path).histories().values())

    rows = run_quality_bench(workspace, shared=shared, only=["esc50"], quick=True, plan=plan)["esc50"]
    assert "candidate: tiny-logmel, 2 epochs" not in rows and set(epochs_trained()) == {1}
    rows = run_quality_bench(workspace, shared=shared, only=["esc50"], plan=plan)["esc50"]
    assert set(rows["candidate: tiny-logmel, 2 epochs"]) == {"fold 1", "fold 2", "fold 3", "fold 4", "fold 5", "mean",
                                                            "train_seconds"}
    # the default's run reused, the width candidate on the protocol's schedule, the longer one on its own
    assert epochs_trained() == [1] * 15 + [2] * 5
    # Every view of the blend on the longer schedule: their blend, with equal and fitted weights.
    assert epochs_trained("tiny-mfcc") == [1] * 5 + [2] * 5
    longer = "candidate: every view, 2 epochs (blend)"
    assert rows[longer]["train_seconds"] == pytest.approx(
        rows["candidate: tiny-logmel, 2 epochs"]["train_seconds"]
        + sum(h["seconds"].sum() for path in workspace.runs.glob("bench-esc50-tiny-mfcc-*")
              for h in Run(path).histories().values() if len(h) == 2))
    assert "candidate: every view, 2 epochs (blend, weights fitted out of fold)" in rows
    # ESC-50's own candidate: the default recipe at another width, on the protocol's schedule.
    assert set(rows["candidate: tiny-logmel, width 6"]) >= {"fold 1", "fold 5", "mean"}
    verdicts = capsys.readouterr().out.split("target mean accuracy")[-1].splitlines()[0]
    assert f"tiny-logmel, width 6 {rows['candidate: tiny-logmel, width 6']['mean']['accuracy']:.4f}" in verdicts
    params = [Run(path).config()["params"] for path in workspace.runs.glob("bench-esc50-tiny-logmel-*")]
    shapes = sorted((p["model"]["width"], p["features"]["hop_length"]) for p in params)
    # the default, its longer schedule, the width candidate, the features candidate
    assert shapes == [(4, 512), (4, 1024), (4, 1024), (6, 1024)]
    # The features candidate on frames of its own: its cache beside the default's, more frames a clip.
    caches = {json.loads((cache / "params.json").read_text())["hop_length"]: np.load(cache / "train" / "frames.npy")
              for cache in (workspace.features / "esc50").glob("logmel-*")}
    assert sorted(caches) == [512, 1024] and len(caches[512]) > len(caches[1024])
    assert set(rows["candidate: tiny-logmel, hop 512"]) >= {"fold 1", "fold 5", "mean"}
    assert f"tiny-logmel, hop 512 {rows['candidate: tiny-logmel, hop 512']['mean']['accuracy']:.4f}" in verdicts
    # The finished candidates blended: per held-out fold, the argmax of their runs' probabilities' product.
    blend = "candidate: the 2 finished candidates (blend)"
    assert blend.replace("(blend)", "(blend, weights fitted out of fold)") in rows
    assert f"the 2 finished candidates (blend) {rows[blend]['mean']['accuracy']:.4f}" in verdicts
    members = [Run(path).predictions("oof") for path in workspace.runs.glob("bench-esc50-tiny-logmel-*")
               if (Run(path).config()["params"]["model"]["width"], Run(path).config()["params"]["features"]
                   ["hop_length"]) in ((6, 1024), (4, 512))]
    assert len(members) == 2 and members[0].fnames == members[1].fnames
    meta = pd.read_csv(shared / "esc50" / "meta" / "esc50.csv").set_index("filename")
    folds = meta.loc[members[0].fnames, "fold"].to_numpy()
    right = (members[0].probs * members[1].probs).argmax(axis=1) == members[0].true_ids
    for fold in range(1, 6):
        assert rows[blend][f"fold {fold}"]["accuracy"] == pytest.approx(right[folds == fold].mean())
    assert rows[blend]["train_seconds"] == pytest.approx(rows["candidate: tiny-logmel, width 6"]["train_seconds"]
                                                         + rows["candidate: tiny-logmel, hop 512"]["train_seconds"])


def test_a_superset_run_s_predictions_are_kept_to_the_dataset_s_labels_in_its_clip_order():
    import pandas as pd

    from benchmarks.quality.superset import narrowed_probs
    from competition.datasets.spec import Index

    class Subset:  # the two fields narrowed_probs reads of a dataset
        name, labels = "sub", ("c", "a")

    index = Index(pd.DataFrame({"fname": ["y", "x"]}), pd.DataFrame())
    probs = np.array([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3]], np.float32)  # x, y over labels a, b, c
    kept = narrowed_probs(["x", "y"], probs, ("a", "b", "c"), index, Subset)
    # y first (the index's order), then x; columns c, a; each row renormalised over the two.
    np.testing.assert_allclose(kept, [[0.3 / 0.8, 0.5 / 0.8], [0.3 / 0.4, 0.1 / 0.4]], rtol=1e-6)
    with pytest.raises(ValueError, match=r"1 sub clip\(s\) have no held-out prediction in the 1-clip run, e.g. 'y'"):
        narrowed_probs(["x"], probs[:1], ("a", "b", "c"), index, Subset)


@pytest.mark.slow
def test_esc10_is_also_scored_by_the_esc50_protocol_s_runs_among_its_own_labels(tmp_path, tiny_competition, capsys,
                                                                                 monkeypatch):
    import pandas as pd

    from benchmarks.quality.settings import ESC50
    from competition.datasets.esc50 import ESC10_LABELS, LABELS
    from competition.modeling.runs import Run

    recipes = {}
    for name, kind in (("tiny-logmel", "logmel"), ("tiny-mfcc", "mfcc"), ("tiny-peer", "mfcc")):
        recipes[name] = tmp_path / f"{name}.toml"
        recipes[name].write_text(TINY_RECIPE.format(name=name, kind=kind))
    plan = replace(QualityPlan(), kit=(recipes["tiny-logmel"], recipes["tiny-mfcc"]), peer=recipes["tiny-peer"],
                   longer_schedules={"2 epochs": {"epochs": 2}}, training_ablations={},
                   esc50_candidates={"width 6": ({}, {"width": 6}, {}), "hop 512": ({"hop_length": 512}, {}, {})}
                   ).with_protocol(
        replace(ESC50, epochs=1)).with_protocol(replace(ESC10, epochs=1))
    shared = _fake_shared(tmp_path, tiny_competition)
    # Every clip its own recording, but one ESC-10 clip of fold 1 and a clip of fold 2 (another class) cut from one.
    meta = shared / "esc50" / "meta" / "esc50.csv"
    table = pd.read_csv(meta)
    table["src_file"] = 1000 + table.index
    esc10_clip = table.index[table["esc10"] & (table["fold"] == 1)][0]
    table.loc[table.index[~table["esc10"] & (table["fold"] == 2)][0], "src_file"] = table.loc[esc10_clip, "src_file"]
    table.to_csv(meta, index=False)
    workspace = Workspace(tmp_path / "kit")
    prefix = "trained on esc50's classes: "

    # Before the ESC-50 protocol ran: nothing of it is trained here, and the note names its runs.
    rows = run_quality_bench(workspace, shared=shared, only=["esc10"], quick=True, plan=plan)["esc10"]
    out = capsys.readouterr().out
    assert not [name for name in rows if name.startswith(prefix)] and not list(workspace.runs.glob("bench-esc50-*"))
    assert "not finished, so not scored here (the esc50 protocol trains them" in out
    assert out.count("bench-esc50-tiny-logmel-") == 4  # the protocol's schedule, the longer one, the candidates

    run_quality_bench(workspace, shared=shared, only=["esc50"], quick=True, plan=plan)
    reads = []  # the ESC-50 runs' held-out predictions: each read once, for its own row, the blend and beside
    read_predictions = Run.predictions
    with monkeypatch.context() as counting:  # its own undo: the fixture's tiny backbone stays registered
        counting.setattr(Run, "predictions", lambda run, split: reads.append((run.name, split))
                         or read_predictions(run, split))
        rows = run_quality_bench(workspace, shared=shared, only=["esc10"], quick=True, plan=plan)["esc10"]
    out = capsys.readouterr().out
    esc50_reads = sorted(read for read in reads if read[0].startswith("bench-esc50-"))
    assert [split for _, split in esc50_reads] == ["oof", "oof"] and len(set(esc50_reads)) == 2
    blend = f"{prefix}tiny-logmel + tiny-mfcc (blend)"
    assert [name for name in rows if name.startswith(prefix)] == [
        f"{prefix}tiny-logmel", f"{prefix}tiny-mfcc", blend, f"{prefix}tiny-logmel + tiny-mfcc (blend, weights fitted "
                                                             f"out of fold)"]
    esc10 = table[table["esc10"]]
    assert f"1 of {len(esc10)} esc10 clips share a recording with a clip of another esc50 fold" in out
    assert out.count("bench-esc50-tiny-logmel-") == 3  # the longer schedule and the candidates: not with --quick
    assert f"{prefix}tiny-logmel {rows[f'{prefix}tiny-logmel']['mean']['accuracy']:.4f}" in out.split(
        "target mean accuracy")[-1]
    # Each row: the ESC-50 run's held-out predictions on the ESC-10 clips, argmax over ESC-10's labels only.
    (run_dir,) = [path for path in workspace.runs.glob("bench-esc50-tiny-logmel-*")]
    oof = Run(run_dir).predictions("oof")
    by_fname = dict(zip(oof.fnames, oof.probs))
    columns = [LABELS.index(label) for label in ESC10_LABELS]

    def assert_read_among_esc10_labels(row: str, by_fname: dict) -> None:
        for fold in range(1, 6):
            clips = esc10[esc10["fold"] == fold]
            picked = [ESC10_LABELS[int(np.argmax(by_fname[name][columns]))] for name in clips["filename"]]
            assert rows[row][f"fold {fold}"]["accuracy"] == pytest.approx(
                np.mean(np.array(picked) == clips["category"].to_numpy()))

    assert_read_among_esc10_labels(f"{prefix}tiny-logmel", by_fname)
    assert rows[blend]["train_seconds"] == pytest.approx(rows[f"{prefix}tiny-logmel"]["train_seconds"]
                                                         + rows[f"{prefix}tiny-mfcc"]["train_seconds"])
    # Beside ESC-10's own runs: their two views and ESC-50's two, blended (argmax of the summed log probabilities).
    beside = f"kit + {prefix}tiny-logmel + tiny-mfcc: 4 views (blend)"
    assert beside in rows and beside.replace("(blend)", "(blend, weights fitted out of fold)") in rows
    log_sum = np.zeros((len(esc10), len(ESC10_LABELS)))
    for view in ("tiny-logmel", "tiny-mfcc"):
        (own,) = workspace.runs.glob(f"bench-esc10-{view}-*")
        own_oof = Run(own).predictions("oof")
        own_by_fname = dict(zip(own_oof.fnames, own_oof.probs))
        (big,) = workspace.runs.glob(f"bench-esc50-{view}-*")
        big_oof = Run(big).predictions("oof")
        big_by_fname = dict(zip(big_oof.fnames, big_oof.probs))
        for row, name in enumerate(esc10["filename"]):
            narrowed = big_by_fname[name][columns] / big_by_fname[name][columns].sum()
            log_sum[row] += np.log(np.clip(own_by_fname[name], 1e-7, 1)) + np.log(np.clip(narrowed, 1e-7, 1))
    right = np.array(ESC10_LABELS)[log_sum.argmax(axis=1)] == esc10["category"].to_numpy()
    for fold in range(1, 6):
        assert rows[beside][f"fold {fold}"]["accuracy"] == pytest.approx(right[esc10["fold"].to_numpy() == fold].mean())

    # Once ESC-50 trained its longer schedule and its candidate (not with --quick): their rows too, and the
    # candidate's is its own run (width 6) read among ESC-10's labels.
    run_quality_bench(workspace, shared=shared, only=["esc50"], plan=plan)
    rows = run_quality_bench(workspace, shared=shared, only=["esc10"], quick=True, plan=plan)["esc10"]
    assert "not finished, so not scored here" not in capsys.readouterr().out
    assert {f"{prefix}tiny-logmel, 2 epochs", f"{prefix}tiny-mfcc, 2 epochs",
            f"{prefix}tiny-logmel, width 6"} <= set(rows)
    (candidate,) = [path for path in workspace.runs.glob("bench-esc50-tiny-logmel-*")
                    if Run(path).config()["params"]["model"]["width"] == 6]
    candidate_oof = Run(candidate).predictions("oof")
    assert_read_among_esc10_labels(f"{prefix}tiny-logmel, width 6",
                                   dict(zip(candidate_oof.fnames, candidate_oof.probs)))
    # Both candidates blended, as ESC-50's table blends them: among ESC-10's labels, the argmax of their product.
    (other,) = [path for path in workspace.runs.glob("bench-esc50-tiny-logmel-*")
                if Run(path).config()["params"]["features"]["hop_length"] == 512]
    other_oof = Run(other).predictions("oof")
    product = dict(zip(other_oof.fnames, other_oof.probs * candidate_oof.probs))
    assert other_oof.fnames == candidate_oof.fnames
    assert_read_among_esc10_labels(f"{prefix}the 2 finished candidates (blend)", product)
    assert f"{prefix}the 2 finished candidates (blend, weights fitted out of fold)" in rows


@pytest.mark.slow
def test_finished_only_predicts_a_run_whose_twin_finished_and_trains_nothing_else(workspace):
    from benchmarks.quality.bench import Bench
    from competition.config import WHOLE_CLIP, Experiment, FeatureConfig, FoldConfig, ModelConfig, TrainConfig
    from competition.datasets.registry import get_dataset
    from competition.modeling.runs import Run
    from competition.modeling.train import train_experiment

    dataset = get_dataset("demo")
    index = dataset.index(workspace.dataset_dir("demo"))
    crops = Experiment(name="tiny", features=FeatureConfig(n_mels=16), model=ModelConfig(width=4),
                       train=TrainConfig(epochs=1, crop_seconds=1.0, tta_crops=2), folds=FoldConfig(k=2))
    whole, longer = (crops.with_overrides(train={"tta_crops": WHOLE_CLIP}),
                     crops.with_overrides(train={"tta_crops": WHOLE_CLIP, "epochs": 2}))
    twin = train_experiment(workspace, dataset, index, crops, run_name=Bench.run_name(dataset, crops))
    bench = Bench(workspace, quick=False, finished_only=True, plan=QualityPlan())
    run_dir = bench.train(dataset, index, whole)
    assert run_dir == workspace.runs / Bench.run_name(dataset, whole) and Run(run_dir).has_scores()
    assert {Run(run_dir).fold_summary(fold)["predicted_from"] for fold in (0, 1)} == {twin.name}
    assert bench.train(dataset, index, longer) is None and bench.missing == [Bench.run_name(dataset, longer)]
    assert not (workspace.runs / Bench.run_name(dataset, longer)).exists()
    # A fine-tune whose twin finished from the same base, by content: the base copied elsewhere (as a twin
    # base run holds it) is the same base, and nothing trains.
    base = Run(twin).model_path(0)
    tuned = train_experiment(workspace, dataset, index, crops, run_name="tuned", base_model=base)
    copied = workspace.root / "copied-base.keras"
    copied.write_bytes(base.read_bytes())
    tuned_whole = bench.train(dataset, index, whole, run_name="tuned-whole", base_model=copied)
    assert {Run(tuned_whole).fold_summary(fold)["predicted_from"] for fold in (0, 1)} == {tuned.name}
    # From another base (the twin's other fold model): nothing finished to predict from.
    assert bench.train(dataset, index, whole, run_name="tuned-other", base_model=Run(twin).model_path(1)) is None
