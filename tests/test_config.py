import pytest

from competition.config import ConfigError, Experiment, FeatureConfig, config_hash, load_experiment


def test_hash_ignores_key_order_and_sees_values():
    assert config_hash({"a": 1, "b": 2}) == config_hash({"b": 2, "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_feature_key_changes_only_with_parameters_that_change_the_output():
    base = FeatureConfig(kind="logmel")
    assert FeatureConfig(kind="logmel", n_mels=128).key != base.key
    assert FeatureConfig(kind="logmel", hop_length=256).key != base.key
    # n_mfcc does not change a log-mel, so the log-mel cache is shared.
    assert FeatureConfig(kind="logmel", n_mfcc=20).key == base.key
    assert FeatureConfig(kind="mfcc", n_mfcc=20).key != FeatureConfig(kind="mfcc").key
    assert base.key.startswith("logmel-")


def test_training_parameters_change_the_run_hash_not_the_feature_key():
    experiment = Experiment(name="x")
    faster = experiment.with_overrides(train={"learning_rate": 0.01})
    assert faster.hash != experiment.hash
    assert faster.features.key == experiment.features.key


def test_load_experiment_reads_sections(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text('name = "e1"\n[features]\nkind = "mfcc"\nn_mfcc = 20\n[train]\nepochs = 3\n[folds]\nk = 4\n')
    experiment = load_experiment(path)
    assert (experiment.name, experiment.features.kind, experiment.features.n_mfcc) == ("e1", "mfcc", 20)
    assert (experiment.train.epochs, experiment.folds.k) == (3, 4)


@pytest.mark.parametrize("text, message", [
    ("[train]\nepocs = 3\n", "unknown key(s) in [train]: epocs"),
    ("[trainer]\nepochs = 3\n", "unknown section(s): trainer"),
    ("[features]\nkind = 'cqt'\n", "features.kind must be"),
    ("[train\n", "not valid TOML"),
    ("[datasets.urbansound8k.train]\nbin_shfit = 4\n", "unknown key(s) in [datasets.urbansound8k.train]: bin_shfit"),
    ("[datasets.urbansound8k.trainer]\nepochs = 3\n", "unknown section(s) in [datasets.urbansound8k]: trainer"),
    ("[features]\nkind = 'mfcc'\n[datasets.esc50.train]\nbin_shift = 4\n", "bin_shift and train.gain_db move log-mel"),
    ("[train]\ntta_crops = -1\n", "train.tta_crops must be 1 or more crops, or 0 (the whole clip at once), not -1"),
])
def test_load_experiment_names_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_experiment(path)
    assert message in str(error.value)


def test_a_datasets_own_values_apply_to_that_dataset_only(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text("[train]\nepochs = 3\nbin_shift = 0\n[datasets.urbansound8k.train]\nbin_shift = 4\n"
                    "gain_db = 6.0\n[datasets.urbansound8k.model]\nwidth = 8\n")
    plain, urban = load_experiment(path), load_experiment(path, "urbansound8k")
    assert load_experiment(path, "freesound-audio-tagging") == plain
    assert (plain.train.bin_shift, plain.train.gain_db, plain.model.width) == (0, 0.0, 32)
    assert (urban.train.bin_shift, urban.train.gain_db, urban.model.width, urban.train.epochs) == (4, 6.0, 8, 3)
    assert urban.hash != plain.hash and urban.features.key == plain.features.key


def test_shipped_experiments_load():
    import tomllib
    from pathlib import Path

    paths = sorted(Path(__file__).parent.parent.glob("experiments/*.toml"))
    assert paths, "no experiments/*.toml found: the loop below would check nothing"
    for path in paths:
        # The file's own name (the file name where it has none): loading raises on any bad key.
        assert load_experiment(path).name == tomllib.loads(path.read_text()).get("name", path.stem)
        for dataset in ("freesound-audio-tagging", "urbansound8k", "esc10", "esc50", "demo"):
            assert load_experiment(path, dataset).name == load_experiment(path).name
