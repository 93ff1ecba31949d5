"""Test-time flip (Predictor flip_test): the maps of a mirrored image, mirrored back by
kdc_model.network.heads.unmirror, are the maps of the image itself; a flip_test predictor averages both."""
import numpy as np
import torch

from kdc_model import ModelConfig, load_model
from kdc_model.network.heads import HEAD_CHANNELS, unmirror
from kdc_model.skeleton import flip_keypoints
from kdc_model.training.synthetic import make_scene
from kdc_model.training.targets import encode_targets


def test_targets_of_the_mirrored_scene_unmirror_to_the_scene_s_own():
    side, stride, radius = 256, 8, 16.0
    scene = make_scene(np.random.default_rng(3), side, side, 1, min_height=120, max_height=200,
                       allow_outside=False, unlabelled_fraction=0.0)
    mirrored_kp = flip_keypoints(scene.keypoints, side)

    def maps(keypoints, masks):
        t = encode_targets(keypoints, masks, np.zeros((side, side), bool), image_size=(side, side),
                           stride=stride, radius=radius)
        return {k: t[k][None] for k in HEAD_CHANNELS}

    own = maps(scene.keypoints, scene.masks)
    back = unmirror(maps(mirrored_kp, scene.masks[:, :, ::-1].copy()))
    for key in HEAD_CHANNELS:
        torch.testing.assert_close(back[key], own[key], atol=1e-4, rtol=0, msg=key)
    assert own["short"].abs().sum() > 0 and own["mid"].abs().sum() > 0   # the check compared something


def test_a_flip_test_predictor_runs_the_network_on_both_images():
    config = ModelConfig(neck_channels=16, head_channels=16, input_size=64)
    torch.manual_seed(0)
    plain = load_model(config, device="cpu")
    flipped = load_model(config, device="cpu", flip_test=True)
    flipped.model.load_state_dict(plain.model.state_dict())
    seen = []
    runner = flipped.runner
    flipped.runner = lambda batch: seen.append(batch.clone()) or runner(batch)
    image = np.random.default_rng(0).integers(0, 255, (48, 64, 3), np.uint8)
    result = flipped(image)
    assert len(seen) == 2 and torch.equal(seen[1], torch.flip(seen[0], dims=[-1]))
    assert result.label_map.shape == image.shape[:2]
    assert len(plain(image).keypoints.shape) == 3


def test_kdc_replay_takes_flip_test_offline_only(tmp_path, capsys):
    import pytest

    from kdc_ros.replay.cli import main as kdc_replay

    with pytest.raises(SystemExit) as exit_info:
        kdc_replay([str(tmp_path / "bag"), "--topic", "/camera/image_raw", "--out", str(tmp_path / "out"), "--live",
                    "--flip-test"])
    assert exit_info.value.code == 2 and "--flip-test is for offline replay" in capsys.readouterr().err
