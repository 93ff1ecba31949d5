"""Each setting is checked once, where it is defined, and the node asks that definition: input_size
(kdc_model.network.config: a letterbox side; the node's 0 = the model's own), device (kdc_model.inference.backends), and
the thresholds the node shares with the model's decoder (a node value below the decoder's is told)."""
from __future__ import annotations

import pytest
from rclpy.parameter import Parameter

from kdc_model import DecoderConfig, ModelConfig, load_model
from kdc_model.inference.backends import device_problem
from kdc_model.network.config import input_size_problem
from kdc_ros.node import params
from node_helpers import log_lines, node_log, start_node

SMALL = ModelConfig(input_size=64, neck_channels=16, head_channels=16)


def test_input_size_means_one_thing_from_the_node_parameter_to_the_model(small_checkpoint, namespace):
    assert params.check_value("input_size", 0) is None, "0: the model's own side"
    for side in (1, 16, 31):  # within the parameter's range, but no letterbox side
        assert params.check_value("input_size", side) == input_size_problem(side) == \
            f"input_size must be at least 32, not {side}"
        with pytest.raises(ValueError, match=f"at least 32, not {side}"):
            load_model(SMALL, input_size=side)
    with pytest.raises(ValueError, match="at least 32, not 16"):
        start_node(None, namespace, model=str(small_checkpoint), device="cpu", backend="torch", input_size=16)
    for setting, side in ((0, 64), (100, 128)):
        with start_node(None, namespace, model=str(small_checkpoint), device="cpu", backend="torch",
                        input_size=setting) as harness:
            assert harness.node.predictor.input_side == side


def test_a_device_setting_is_checked_by_the_model_package():
    for name in ("gpu", "cuda:x", "CPU", ""):
        assert params.check_value("device", name) == device_problem(name) is not None
        with pytest.raises(ValueError, match="is not one of auto, cpu, mps, cuda, cuda:N"):
            load_model(SMALL, device=name)
    for name in ("auto", "cpu", "cuda", "cuda:3"):
        assert params.check_value("device", name) is None


def test_node_thresholds_below_the_decoders_are_told_at_start_and_when_set(small_checkpoint, namespace):
    decoder = DecoderConfig()
    assert params.threshold_warnings(params.load_defaults(), decoder) == [], "the shipped values are above"
    low = {"min_person_score": decoder.min_person_score / 2, "keypoint_threshold": decoder.keypoint_threshold}
    with start_node(None, namespace, model=str(small_checkpoint), device="cpu", backend="torch", **low) as harness:
        log = node_log(harness)
        said = f"min_person_score {low['min_person_score']:g} is below the model decoder's own " \
               f"{decoder.min_person_score:g}"
        harness.wait_for(lambda: any(said in line for line in log_lines(log, harness)), 5.0, "no warning at start")
        assert harness.node.set_parameters([Parameter("keypoint_threshold", value=0.001)])[0].successful
        said = f"keypoint_threshold 0.001 is below the model decoder's own {decoder.keypoint_threshold:g}"
        harness.wait_for(lambda: any(said in line for line in log_lines(log, harness)), 5.0, "no warning when set")


def test_multi_scale_from_the_node_parameter_to_the_model(small_checkpoint, namespace):
    """multi_scale: each side is checked as input_size is, and the node runs every side."""
    from kdc_model.inference.multiscale import MultiScalePredictor

    assert params.check_value("multi_scale", []) is None
    assert params.check_value("multi_scale", [640, 480]) is None
    assert params.check_value("multi_scale", [16]) == "multi_scale must be at least 32, not 16"
    assert "at most 3" in params.check_value("multi_scale", [64, 96, 128, 160])
    assert "over 2048" in params.check_value("multi_scale", [4096])
    with pytest.raises(ValueError, match="multi_scale must be at least 32, not 16"):
        start_node(None, namespace, model=str(small_checkpoint), device="cpu", backend="torch", multi_scale=[16])
    with start_node(None, namespace, model=str(small_checkpoint), device="cpu", backend="torch",
                    multi_scale=[128]) as harness:
        predictor = harness.node.predictor
        assert isinstance(predictor, MultiScalePredictor) and predictor.input_sides == (64, 128)
    with start_node(None, namespace, model=str(small_checkpoint), device="cpu", backend="torch") as harness:
        assert not isinstance(harness.node.predictor, MultiScalePredictor)


def test_a_model_with_its_own_sides_runs_them_unless_the_node_names_its_input(tmp_path, namespace):
    """A checkpoint whose ModelConfig lists more sides (multi_scale): the node's defaults (input_size 0,
    multi_scale []) run all of them and its start-up line names them; input_size alone runs that side;
    the node's multi_scale replaces the model's."""
    from kdc_model import KDCNet, ModelConfig, save_checkpoint
    from kdc_model.inference.multiscale import MultiScalePredictor

    config = ModelConfig(input_size=64, multi_scale=(96,), neck_channels=16, head_channels=16)
    path = tmp_path / "sides.safetensors"
    save_checkpoint(path, KDCNet(config), config)
    with start_node(None, namespace, model=str(path), device="cpu", backend="torch") as harness:
        predictor = harness.node.predictor
        assert isinstance(predictor, MultiScalePredictor) and predictor.input_sides == (64, 96)
        log = node_log(harness)
        harness.wait_for(lambda: any(line.endswith("threads), input 64+96") for line in log_lines(log, harness)),
                         5.0, "the start-up line does not name the sides")
    with start_node(None, namespace, model=str(path), device="cpu", backend="torch", input_size=64) as harness:
        assert not isinstance(harness.node.predictor, MultiScalePredictor)
        assert harness.node.predictor.input_side == 64
    with start_node(None, namespace, model=str(path), device="cpu", backend="torch", multi_scale=[128]) as harness:
        assert harness.node.predictor.input_sides == (64, 128)
