"""ONNX: the export CLI writes a self-describing file ONNX Runtime reproduces; the onnxruntime backend
of the Predictor finds the same people as torch; an unusable backend is refused with the reason.

SceneNet is a real (random-init, small) KDCNet plus the encoded targets of one synthetic scene, so
the exported graph holds every conv of the network while the decoder still has people to find.
"""
import json

import numpy as np
import pytest
import torch

from kdc_model import KDCNet, Predictor, load_model, save_checkpoint
from kdc_model.inference import backends
from kdc_model.inference.export import OUTPUT_NAMES, main as export_main, read_config
from kdc_model.inference.runtime import onnx_cache_path
from kdc_model.network.heads import HEAD_CHANNELS
from perfect_maps import SIDE, SMALL, SceneNet, people_scene

onnxruntime = pytest.importorskip("onnxruntime")


def test_backends_find_the_same_people():
    scene = people_scene(3, 150, 210, people=3)
    network = SceneNet(scene)
    by_torch = Predictor(network, device="cpu")
    by_onnx = Predictor(network, device="cpu", backend="onnxruntime")
    assert by_onnx.backend == "onnxruntime" and by_onnx.runner.providers == ["CPUExecutionProvider"]
    images = [scene.image, scene.image[:, ::-1].copy()]  # a batch of 2: the batch axis is free
    for expected, got in zip(by_torch.predict_batch(images), by_onnx.predict_batch(images)):
        assert len(expected.scores) >= 2
        assert len(got.scores) == len(expected.scores)
        np.testing.assert_allclose(got.keypoints[..., :2], expected.keypoints[..., :2], atol=1.0)
        np.testing.assert_allclose(got.scores, expected.scores, atol=1e-3)
        assert got.label_map.shape == expected.label_map.shape
        assert (got.label_map == expected.label_map).mean() >= 0.99
        assert (expected.label_map > 0).any()
    assert set(by_onnx.last_timing) == {"preprocess_ms", "network_ms", "decode_ms", "total_ms"}


def test_export_cli_writes_a_self_describing_file(tmp_path, capsys):
    torch.manual_seed(1)
    model = KDCNet(SMALL)
    checkpoint = tmp_path / "small.safetensors"
    save_checkpoint(checkpoint, model, SMALL)
    out = tmp_path / "small.onnx"
    assert export_main(["--checkpoint", str(checkpoint), "--out", str(out), "--dynamic"]) == 0
    assert "max abs diff torch vs onnxruntime" in capsys.readouterr().out
    assert read_config(out).to_dict() == SMALL.to_dict()
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert json.loads(session.get_modelmeta().custom_metadata_map["config"]) == SMALL.to_dict()
    assert [o.name for o in session.get_outputs()] == list(OUTPUT_NAMES) == list(HEAD_CHANNELS)
    images = torch.randn(2, 3, 96, 128)  # --dynamic: any batch and multiple-of-32 size
    with torch.no_grad():
        expected = model.eval()(images)
    for key, value in zip(OUTPUT_NAMES, session.run(None, {"images": images.numpy()})):
        np.testing.assert_allclose(value, expected[key].numpy(), atol=1e-4)

    assert export_main(["--checkpoint", str(tmp_path / "missing.safetensors"), "--out", str(out)]) == 2
    assert "checkpoint file not found" in capsys.readouterr().err


def test_load_model_caches_the_export_beside_the_checkpoint(tmp_path):
    torch.manual_seed(2)
    checkpoint = tmp_path / "small.safetensors"
    save_checkpoint(checkpoint, KDCNet(SMALL), SMALL)
    predictor = load_model(checkpoint, device="cpu", backend="onnxruntime")
    cached = onnx_cache_path(checkpoint, SIDE)
    assert not predictor.runner.from_cache and cached.parent == checkpoint.parent.resolve()
    assert read_config(cached).to_dict() == SMALL.to_dict()
    again = load_model(checkpoint, device="cpu", backend="onnxruntime")
    assert again.runner.from_cache, "the verified export beside the checkpoint is reused"
    image = np.random.default_rng(0).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    assert predictor(image).label_map.shape == again(image).label_map.shape == (90, 120)


def test_an_unusable_backend_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="unknown backend 'tflite'; choose one of auto, torch, onnxruntime, tensorrt"):
        load_model(SMALL, device="cpu", backend="tflite")
    if "TensorrtExecutionProvider" not in onnxruntime.get_available_providers():
        with pytest.raises(ValueError, match="TensorrtExecutionProvider"):
            load_model(SMALL, device="cpu", backend="tensorrt")
    assert backends.backend_problem("torch") is None and backends.backend_problem("onnxruntime") is None


def test_auto_picks_onnxruntime_on_cpu_and_falls_back_to_torch_without_it():
    predictor = load_model(SMALL, device="cpu", backend="auto")
    assert predictor.backend == "onnxruntime" and predictor.runner.providers == ["CPUExecutionProvider"]
    assert "onnxruntime installed" in predictor.backend_reason

    missing = "backend {} needs the onnxruntime package (pip install onnxruntime), which is not installed"
    without_onnxruntime = lambda name: missing.format(name) if name in ("onnxruntime", "tensorrt") else None
    backend, reason = backends.auto_backend("cpu", problem=without_onnxruntime)
    assert backend == "torch" and reason == "falling back to torch: " + missing.format("onnxruntime")
    assert backends.auto_backend("cuda", problem=without_onnxruntime) == \
        ("torch", "CUDA device without ONNX Runtime's TensorRT provider")
    assert backends.auto_backend("cuda", half=True)[0] == "torch"
    assert backends.auto_backend("mps")[0] == "torch"


def test_the_node_parameter_refuses_an_unusable_backend():
    from kdc_ros.node import params

    assert params.load_defaults()["backend"] == "auto"
    assert "not one of auto, torch, onnxruntime, tensorrt" in params.check_value("backend", "tflite")
    assert params.check_value("backend", "onnxruntime") is None and params.check_value("backend", "auto") is None
    if "TensorrtExecutionProvider" not in onnxruntime.get_available_providers():
        assert "TensorrtExecutionProvider" in params.check_value("backend", "tensorrt")
