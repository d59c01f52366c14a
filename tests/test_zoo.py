import shutil
import time

import pytest

from course_lib import data, train, zoo


@pytest.mark.parametrize("name", zoo.names())
def test_baselines_load_fast_verified_and_reach_their_targets(name):
    start = time.perf_counter()
    model = zoo.load(name)
    assert time.perf_counter() - start < 2.0
    record = zoo.entry(name)
    ev = train.evaluate(model, data.load(record["dataset"], "test"))
    # The manifest's figure is the one measured at build time, and it still holds.
    assert ev.error == pytest.approx(record["test_error"], abs=2e-4)


def test_baselines_reach_the_published_errors():
    assert zoo.entry("lenet_300_100")["test_error"] <= 0.0164   # Han et al. 2015
    assert zoo.entry("lenet5")["test_error"] <= 0.0080


def test_shipped_pruned_lenet5_reproduces_han_et_al():
    from course_lib import pruning
    model = zoo.load("lenet5_pruned")
    assert pruning.kept_fraction(model) <= 1 / 12                # >= 12x fewer weights
    assert zoo.entry("lenet5_pruned")["test_error"] <= 0.0080
    recipe = dict(zoo.RECIPES["lenet5_pruned"].sparsity)
    for layer, sparsity in pruning.layer_sparsity(model).items():
        assert sparsity == pytest.approx(recipe[layer], abs=1e-3)


@pytest.fixture()
def pretrained_copy(tmp_path, monkeypatch):
    folder = tmp_path / "pretrained"
    shutil.copytree(zoo.PRETRAINED_DIR, folder)
    monkeypatch.setattr(zoo, "PRETRAINED_DIR", folder)
    monkeypatch.setattr(zoo, "MANIFEST", folder / "manifest.json")
    return folder


def test_truncated_checkpoint_is_detected(pretrained_copy):
    path = pretrained_copy / "lenet5.safetensors"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(zoo.CheckpointError, match="lenet5.safetensors is corrupted"):
        zoo.load("lenet5")
    with pytest.raises(zoo.CheckpointError, match="could not be read"):
        zoo.load_state_dict(path)


def test_missing_checkpoint_is_named(pretrained_copy):
    (pretrained_copy / "lenet_300_100.safetensors").unlink()
    with pytest.raises(zoo.CheckpointError, match="lenet_300_100.safetensors is missing"):
        zoo.load("lenet_300_100")


def test_bad_name():
    with pytest.raises(ValueError, match="name must be one of"):
        zoo.load("alexnet")


def test_cli_lists_and_verifies(capsys):
    assert zoo.main(["list"]) == 0
    assert "lenet5" in capsys.readouterr().out
    assert zoo.main(["verify"]) == 0
    with pytest.raises(SystemExit):
        zoo.main(["build", "alexnet"])
