"""python -m kdc_model.training.train end to end on a tiny generated dataset: a few steps, a checkpoint,
an exact resume, validation metrics, then kdc_model.training.evaluate on the checkpoint. Under a minute."""
import csv
import json

import pytest
import torch
import yaml

from kdc_model.training import evaluate, train
from kdc_model import load_checkpoint
from synthetic_coco import write_dataset

RECIPE = {
    "model": {"backbone": "mobilenet_v2", "output_stride": 8, "neck_channels": 16, "head_channels": 16,
              "input_size": 128},
    "data": {"sources": [{"name": "synthetic", "annotations": "annotations.json", "images": "images",
                          "val": {"file_names": ["scene_004.png", "scene_005.png"]}}]},
    "augment": {"copy_paste_prob": 0.5},
    "train": {"steps": 4, "batch_size": 2, "crop_size": 128, "lr": 1e-3, "warmup_steps": 1, "workers": 0,
              "threads": 1, "log_every": 1, "val_every": 0, "backbone_weights": None, "device": "cpu"},
}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    folder = tmp_path_factory.mktemp("train_data")
    write_dataset(folder, count=6, size=128, crowd_probability=0.3)
    (folder / "recipe.yaml").write_text(yaml.safe_dump(RECIPE))
    return folder


def _run(*args):
    assert train.main([*map(str, args), "--no-progress"]) == 0


def test_train_resume_and_evaluate(data_root, tmp_path):
    paused, straight = tmp_path / "paused", tmp_path / "straight"
    common = ["--config", data_root / "recipe.yaml", "--data-root", data_root]

    _run(*common, "--out", paused, "--stop-at", 2)
    assert torch.load(paused / "state.pt", weights_only=True)["step"] == 2
    assert (paused / "last.safetensors").is_file() and not (paused / "val" / "metrics.json").exists()

    _run("--out", paused, "--resume", "--data-root", data_root)
    assert torch.load(paused / "state.pt", weights_only=True)["step"] == 4
    with open(paused / "log.csv") as f:
        assert [int(row["step"]) for row in csv.DictReader(f)] == [1, 2, 3, 4]
    metrics = json.loads((paused / "val" / "metrics.json").read_text())
    assert metrics["keypoints_images"] == 2 and 0.0 <= metrics["keypoints_ap"] <= 1.0
    assert (paused / "curves.png").is_file() and (paused / "val" / "predictions.png").is_file()

    # The resumed run is the uninterrupted one: same batches, same learning rates, same optimizer state.
    _run(*common, "--out", straight)
    config, resumed_weights = load_checkpoint(paused / "last.safetensors")
    _, straight_weights = load_checkpoint(straight / "last.safetensors")
    assert config.input_size == 128
    for key, value in straight_weights.items():
        torch.testing.assert_close(resumed_weights[key], value, rtol=1e-5, atol=1e-6, msg=key)

    out = tmp_path / "eval"
    assert evaluate.main(["--images", str(data_root / "images"), "--annotations", str(data_root / "annotations.json"),
                          "--checkpoint", str(paused / "last.safetensors"), "--out", str(out),
                          "--device", "cpu", "--max-images", "3", "--draw", "3"]) == 0
    assert set(evaluate.METRIC_KEYS) <= set(json.loads((out / "metrics.json").read_text()))
    assert (out / "predictions.png").is_file()


def test_fine_tuning_starts_from_the_given_weights(data_root, tmp_path):
    """train.init_weights: a fresh run (new optimizer and schedule) starting from another run's weights."""
    first, second = tmp_path / "first", tmp_path / "second"
    common = ["--config", data_root / "recipe.yaml", "--data-root", data_root]
    _run(*common, "--out", first, "--stop-at", 2)
    _run(*common, "--out", second, "--set", f"train.init_weights={first / 'last.safetensors'}", "--stop-at", 0,
         "--set", "train.lr=3e-4")  # YAML reads 3e-4 as a string: the recipe makes it a number
    assert yaml.safe_load((second / "recipe.yaml").read_text())["train"]["lr"] == 3e-4
    _, start = load_checkpoint(first / "last.safetensors")
    _, loaded = load_checkpoint(second / "last.safetensors")
    for key, value in start.items():
        torch.testing.assert_close(loaded[key], value, msg=key)
    assert torch.load(second / "state.pt", weights_only=True)["step"] == 0
    wider = yaml.safe_load((data_root / "recipe.yaml").read_text())
    wider["model"]["neck_channels"] = 32
    (tmp_path / "wider.yaml").write_text(yaml.safe_dump(wider))
    with pytest.raises(ValueError, match="network differs"):
        train.main(["--config", str(tmp_path / "wider.yaml"), "--data-root", str(data_root), "--out",
                    str(tmp_path / "third"), "--set", f"train.init_weights={first / 'last.safetensors'}",
                    "--no-progress"])


def test_a_wider_model_starts_from_a_trained_backbone(data_root, tmp_path):
    """train.backbone_weights may name a KDC checkpoint: its backbone is reused, the neck and heads
    (here wider) start fresh."""
    first, wider_run = tmp_path / "first", tmp_path / "wider"
    common = ["--config", data_root / "recipe.yaml", "--data-root", data_root]
    _run(*common, "--out", first, "--stop-at", 2)
    wider = yaml.safe_load((data_root / "recipe.yaml").read_text())
    wider["model"]["neck_channels"] = wider["model"]["head_channels"] = 32
    (tmp_path / "wider.yaml").write_text(yaml.safe_dump(wider))
    _run("--config", tmp_path / "wider.yaml", "--data-root", data_root, "--out", wider_run,
         "--backbone-weights", first / "last.safetensors", "--stop-at", 0)
    _, trained = load_checkpoint(first / "last.safetensors")
    config, loaded = load_checkpoint(wider_run / "last.safetensors")
    assert config.neck_channels == 32
    backbone = [k for k in trained if k.startswith("backbone.")]
    assert backbone and all(torch.equal(loaded[k], trained[k]) for k in backbone)
    assert loaded["heads.short.out.weight"].shape[1] == 32


def test_ema_weights_are_validated_saved_and_resumed_exactly(data_root, tmp_path):
    """train.ema_decay: the saved model is the moving average (not the last step's weights), and a
    paused run resumes it exactly."""
    paused, straight = tmp_path / "paused", tmp_path / "straight"
    common = ["--config", data_root / "recipe.yaml", "--data-root", data_root, "--set", "train.ema_decay=0.5"]
    _run(*common, "--out", paused, "--stop-at", 2)
    _run("--out", paused, "--resume", "--data-root", data_root)
    _run(*common, "--out", straight)
    state = torch.load(straight / "state.pt", weights_only=True)
    _, saved = load_checkpoint(straight / "last.safetensors")
    _, resumed = load_checkpoint(paused / "last.safetensors")
    key = "heads.short.out.weight"
    assert not torch.allclose(saved[key], state["model"][key])     # the average, not the raw weights
    torch.testing.assert_close(saved[key], state["ema"][f"module.{key}"])
    for k, value in saved.items():
        torch.testing.assert_close(resumed[k], value, rtol=1e-5, atol=1e-6, msg=k)


def test_fine_tuning_carries_weights_to_a_smaller_disk_and_deeper_heads(data_root, tmp_path):
    """train.init_weights into a network with another disk radius and deeper heads: the same pixel
    offsets and maps come out before any step; other network changes are refused."""
    from kdc_model.network.kdcnet import KDCNet

    first, second = tmp_path / "first", tmp_path / "second"
    common = ["--config", data_root / "recipe.yaml", "--data-root", data_root]
    _run(*common, "--out", first, "--stop-at", 2)
    _run(*common, "--out", second, "--set", f"train.init_weights={first / 'last.safetensors'}", "--stop-at", 0,
         "--set", "model.disk_radius=16", "--set", "model.head_depth=2")
    outputs = []
    for run in (first, second):
        config, state = load_checkpoint(run / "last.safetensors")
        model = KDCNet(config).eval()
        model.load_state_dict(state)
        with torch.no_grad():
            outputs.append(model(torch.linspace(-1, 1, 3 * 128 * 128).view(1, 3, 128, 128)))
    assert load_checkpoint(second / "last.safetensors")[0].head_depth == 2
    for key, value in outputs[0].items():
        torch.testing.assert_close(outputs[1][key], value, rtol=1e-4, atol=1e-4, msg=key)
    with pytest.raises(ValueError, match="head_depth only upward"):
        train.main([*map(str, common), "--out", str(tmp_path / "third"), "--no-progress",
                    "--set", f"train.init_weights={second / 'last.safetensors'}"])


def test_fine_tuning_carries_weights_to_a_finer_output_stride(data_root, tmp_path):
    """train.init_weights into a network with a finer output stride: the backbone, the neck's
    existing levels and the heads carry over, the new neck level starts untrained; a coarser one
    is refused."""
    first, finer = tmp_path / "first", tmp_path / "finer"
    common = ["--config", data_root / "recipe.yaml", "--data-root", data_root]
    _run(*common, "--out", first, "--stop-at", 2, "--set", "model.output_stride=8")
    _run(*common, "--out", finer, "--set", f"train.init_weights={first / 'last.safetensors'}", "--stop-at", 0,
         "--set", "model.output_stride=4")
    _, trained = load_checkpoint(first / "last.safetensors")
    config, carried = load_checkpoint(finer / "last.safetensors")
    assert config.output_stride == 4
    assert set(carried) - set(trained) and all(k.startswith(("neck.lateral.4.", "neck.smooth.4."))
                                               for k in set(carried) - set(trained))
    for key, value in trained.items():
        torch.testing.assert_close(carried[key], value, msg=key)
    with pytest.raises(ValueError, match="output_stride only downward"):
        train.main([*map(str, common), "--out", str(tmp_path / "coarser"), "--no-progress",
                    "--set", f"train.init_weights={finer / 'last.safetensors'}", "--set", "model.output_stride=8"])


def test_frozen_batchnorm_trains_with_the_running_statistics(data_root, tmp_path):
    """train.frozen_batchnorm: BatchNorm normalises with (and keeps) the running statistics of the
    start weights, as inference does; other weights still learn. Without it the statistics move."""
    first = tmp_path / "first"
    common = ["--config", data_root / "recipe.yaml", "--data-root", data_root]
    _run(*common, "--out", first, "--stop-at", 2)
    _, start = load_checkpoint(first / "last.safetensors")
    stats = [k for k in start if k.endswith("running_mean") or k.endswith("running_var")]
    for frozen in (True, False):
        out = tmp_path / f"frozen_{frozen}"
        _run(*common, "--out", out, "--stop-at", 2, "--set", f"train.init_weights={first / 'last.safetensors'}",
             "--set", f"train.frozen_batchnorm={str(frozen).lower()}")
        _, after = load_checkpoint(out / "last.safetensors")
        assert all(torch.equal(after[k], start[k]) for k in stats) == frozen
        assert not torch.equal(after["heads.short.out.weight"], start["heads.short.out.weight"])


def test_a_recipe_decoder_section_is_stored_with_the_weights(data_root, tmp_path):
    """model.decoder in a recipe: the decoder calibrated for that network travels in its checkpoints
    (unnamed settings keep DecoderConfig's defaults)."""
    from kdc_model.network.config import DecoderConfig

    _run("--config", data_root / "recipe.yaml", "--data-root", data_root, "--out", tmp_path / "run",
         "--stop-at", 1, "--set", "model.decoder.vote_bandwidth=4.5", "--set", "model.decoder.mask_sigma=0.4")
    config, _ = load_checkpoint(tmp_path / "run" / "last.safetensors")
    assert (config.decoder.vote_bandwidth, config.decoder.mask_sigma) == (4.5, 0.4)
    assert config.decoder.mid_consistency == DecoderConfig().mid_consistency
