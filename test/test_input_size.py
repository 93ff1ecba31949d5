"""input_size has one meaning, the side of the letterbox the network sees: load_model, the ONNX export
CLI and the bench run the same network at any side (issue 15: the export and the bench rebuilt the
network from a config set to the new side, which rescaled its offset heads and the decoder's disk
radius: at 640 the exported network's outputs differed by up to 135 px from the node's)."""
from __future__ import annotations

import json

import numpy as np
import onnxruntime
import pytest
import torch

from kdc_model import ModelConfig, load_model
from kdc_model.inference.export import main as export_main
from kdc_ros.bench.kdc import kdc_predictor

TRAINED_AT = 64
CONFIG = ModelConfig(input_size=TRAINED_AT, neck_channels=16, head_channels=16)
SIDES = (64, 128, 160)


def outputs(network, images: torch.Tensor) -> dict[str, np.ndarray]:
    with torch.no_grad():
        return {k: v.numpy() for k, v in network(images).items()}


def images_at(side: int) -> torch.Tensor:
    return torch.randn((1, 3, side, side), generator=torch.Generator().manual_seed(side))


@pytest.mark.parametrize("side", SIDES)
def test_export_cli_writes_the_network_load_model_runs_at_that_side(small_checkpoint, tmp_path, side):
    out = tmp_path / "kdc.onnx"
    assert export_main(["--checkpoint", str(small_checkpoint), "--out", str(out), "--input-size", str(side)]) == 0
    predictor = load_model(small_checkpoint, device="cpu", input_size=side)
    assert predictor.input_side == side and predictor.config.radius == CONFIG.radius
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    metadata = session.get_modelmeta().custom_metadata_map
    assert metadata["input_side"] == str(side)
    assert json.loads(metadata["config"]) == CONFIG.to_dict(), "the export must keep the trained config"
    images = images_at(side)
    expected = outputs(predictor.model, images)
    got = dict(zip(expected, session.run(list(expected), {"images": images.numpy()})))
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], atol=1e-4, err_msg=key)


@pytest.mark.parametrize("side", SIDES)
def test_bench_runs_the_network_load_model_runs_at_that_side(small_checkpoint, side):
    predictor = load_model(small_checkpoint, device="cpu", input_size=side)
    benched, weights = kdc_predictor(side, weights=str(small_checkpoint))
    assert weights == str(small_checkpoint)
    assert benched.input_side == side and benched.config == predictor.config == CONFIG
    images = images_at(side)
    expected = outputs(predictor.model, images)
    for key, value in outputs(benched.model, images).items():
        np.testing.assert_array_equal(value, expected[key], err_msg=key)


def test_random_bench_weights_keep_their_config_at_any_side():
    for side in (320, 640):
        benched, _ = kdc_predictor(side, weights="random")
        assert benched.input_side == side and benched.config == ModelConfig()


def test_a_side_the_network_cannot_see_is_refused_in_one_place(small_checkpoint, tmp_path, capsys):
    with pytest.raises(ValueError, match="input_size must be at least 32, not 31"):
        load_model(small_checkpoint, device="cpu", input_size=31)
    assert export_main(["--checkpoint", str(small_checkpoint), "--out", str(tmp_path / "x.onnx"),
                        "--input-size", "16"]) == 2
    assert "input_size must be at least 32, not 16" in capsys.readouterr().err
    assert load_model(small_checkpoint, device="cpu", input_size=33).input_side == 64  # rounded up to 32s
