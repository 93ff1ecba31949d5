"""int8 networks (kdc_model.inference.quantize): made from a checkpoint and real-looking images, run
only when made from the very weights loaded, and refused with the reason otherwise; the node falls
back to float32 with a warning where a model has none."""
from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from kdc_model import KDCNet, ModelConfig, load_model, save_checkpoint
from kdc_model.inference import quantize
from kdc_model.inference.runtime import Int8Unavailable, int8_path

FRAME = Path(__file__).parent / "data" / "vtest_frame200.jpg"
SMALL = ModelConfig(input_size=64, neck_channels=16, head_channels=16)


@pytest.fixture(scope="module")
def quantized(tmp_path_factory):
    """A small random checkpoint and its int8 model, made by the CLI from crops of a real frame."""
    folder = tmp_path_factory.mktemp("int8")
    torch.manual_seed(1)
    checkpoint = folder / "small.safetensors"
    save_checkpoint(checkpoint, KDCNet(SMALL), SMALL)
    frame = cv2.imread(str(FRAME))
    images = folder / "calibration"
    images.mkdir()
    for i, (y, x) in enumerate([(0, 0), (200, 300), (300, 400), (100, 500)]):
        cv2.imwrite(str(images / f"{i}.png"), frame[y:y + 240, x:x + 260])
    assert quantize.main(["--checkpoint", str(checkpoint), "--images", str(images)]) == 0
    return checkpoint


def test_the_int8_network_runs_beside_its_checkpoint_and_agrees_with_float(quantized):
    assert int8_path(quantized).is_file() and int8_path(quantized).name == "small.int8.onnx"
    image = cv2.cvtColor(cv2.imread(str(FRAME)), cv2.COLOR_BGR2RGB)
    exact = load_model(quantized, backend="onnxruntime")
    int8 = load_model(quantized, backend="onnxruntime", int8=True)
    assert int8.int8 and not exact.int8
    batch, _ = exact.preprocess([image])
    maps, maps8 = exact.runner(batch), int8.runner(batch)
    for key, value in maps.items():
        # Quantised, so not equal; but the same maps within a few quantisation steps of their range.
        scale = max(float(value.max() - value.min()), 1e-3 * float(value.abs().max()))
        assert float((value - maps8[key]).abs().mean()) < 0.05 * scale, key
    assert any(not torch.equal(value, maps8[key]) for key, value in maps.items()), "int8 ran the float network"
    assert len(int8(image).scores) >= 0  # decodes like any other run


def test_int8_is_refused_with_the_reason_where_it_cannot_run(quantized, tmp_path):
    with pytest.raises(Int8Unavailable, match="torch"):
        load_model(quantized, backend="torch", int8=True)
    with pytest.raises(Int8Unavailable, match="random-init"):
        load_model(SMALL, backend="onnxruntime", int8=True)
    with pytest.raises(ValueError, match="int8 must be False, True or 'auto'"):
        load_model(quantized, backend="onnxruntime", int8="yes")
    with pytest.warns(RuntimeWarning, match="running float32: int8 needs a checkpoint"):
        assert not load_model(SMALL, backend="onnxruntime", int8="auto").int8
    # No int8 model beside the checkpoint.
    alone = tmp_path / "alone.safetensors"
    shutil.copy(quantized, alone)
    with pytest.raises(Int8Unavailable, match="python -m kdc_model.inference.quantize"):
        load_model(alone, backend="onnxruntime", int8=True)
    # Other weights under the same name: a retrained checkpoint never runs a stale int8 network.
    torch.manual_seed(2)
    save_checkpoint(alone, KDCNet(SMALL), SMALL)
    shutil.copy(int8_path(quantized), int8_path(alone))
    with pytest.raises(Int8Unavailable, match="other weights"):
        load_model(alone, backend="onnxruntime", int8=True)
    # Not an ONNX model at all, and an ONNX model that is not an int8 KDC one.
    int8_path(alone).write_bytes(b"\x00not onnx" * 10)
    with pytest.raises(Int8Unavailable, match="not an ONNX model"):
        load_model(alone, backend="onnxruntime", int8=True)
    from kdc_model.inference.export import onnx_bytes
    int8_path(alone).write_bytes(onnx_bytes(KDCNet(SMALL).eval(), 64))
    with pytest.raises(Int8Unavailable, match="not a KDC int8 model"):
        load_model(alone, backend="onnxruntime", int8=True)


def test_quantize_cli_names_bad_input(quantized, tmp_path, capsys):
    assert quantize.main(["--checkpoint", str(quantized), "--images", str(tmp_path / "nowhere")]) == 2
    assert "no such image or folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert quantize.main(["--checkpoint", str(quantized), "--images", str(tmp_path / "empty")]) == 2
    assert "no calibration images" in capsys.readouterr().err
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    assert quantize.main(["--checkpoint", str(quantized), "--images", str(tmp_path / "bad.jpg")]) == 2
    assert "not an image" in capsys.readouterr().err


def test_the_shipped_int8_network_is_made_from_the_shipped_weights():
    """scripts/package_default_weights.py makes both; a repackaged checkpoint without a new int8 file
    would make the node fall back to float32 (and this test fail)."""
    from kdc_model import DEFAULT_WEIGHTS, build_network
    from kdc_model.inference.runtime import load_int8

    assert load_int8(int8_path(DEFAULT_WEIGHTS.file), build_network("default"))


def test_the_node_runs_float32_with_a_warning_where_the_model_has_no_int8_network(small_checkpoint, namespace):
    from node_helpers import log_lines, node_log, start_node

    assert not int8_path(small_checkpoint).exists()
    with start_node(None, namespace, model=str(small_checkpoint), device="cpu", backend="onnxruntime",
                    int8=True) as harness:
        log = node_log(harness)
        assert not harness.node.predictor.int8 and harness.node.predictor.backend == "onnxruntime"
        said = f"running float32: int8 needs a quantised model at {int8_path(small_checkpoint)}"
        harness.wait_for(lambda: any(said in line for line in log_lines(log, harness)), 5.0, "no warning")
    with start_node(None, namespace, model=str(small_checkpoint), device="cpu", backend="torch",
                    int8=True) as harness:
        log = node_log(harness)
        assert not harness.node.predictor.int8 and harness.node.predictor.backend == "torch"
        said = "running float32: int8 runs on ONNX Runtime on CPU, not backend torch on cpu"
        harness.wait_for(lambda: any(said in line for line in log_lines(log, harness)), 5.0, "no warning")
