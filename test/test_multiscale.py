"""Multi-scale inference (kdc_model.inference.multiscale): merging the people of several sides, and
load_model(multi_scale=...) serving them as one predictor."""
import numpy as np
import pytest

from kdc_model import ModelConfig, load_model
from kdc_model.inference.multiscale import MultiScalePredictor, merge_people
from kdc_model.result import PoseSegResult


def result(people: list[tuple[float, tuple[int, int, int, int]]], size=(60, 80)) -> PoseSegResult:
    """A result whose people are filled rectangles (score, (x0, y0, x1, y1)), keypoints at the centre."""
    label_map = np.zeros(size, np.uint16)
    keypoints = np.zeros((len(people), 17, 3), np.float32)
    for i, (_, (x0, y0, x1, y1)) in enumerate(people):
        label_map[y0:y1 + 1, x0:x1 + 1] = np.where(label_map[y0:y1 + 1, x0:x1 + 1] == 0, i + 1,
                                                   label_map[y0:y1 + 1, x0:x1 + 1])
        keypoints[i, :, :2] = ((x0 + x1) / 2, (y0 + y1) / 2)
        keypoints[i, :, 2] = 0.5
    return PoseSegResult(keypoints=keypoints, scores=np.array([s for s, _ in people], np.float32),
                         boxes=np.array([b for _, b in people], np.float32).reshape(-1, 4),
                         label_map=label_map, mask_scores=np.full(len(people), 0.9, np.float32))


def test_the_same_person_at_two_sides_is_kept_once_with_the_better_score():
    small_side = result([(0.4, (10, 10, 30, 50)), (0.7, (50, 5, 60, 20))])
    large_side = result([(0.6, (11, 9, 31, 49))])          # person 0 again, better scored
    merged = merge_people([small_side, large_side])
    assert merged.scores.tolist() == pytest.approx([0.7, 0.6])
    assert merged.boxes.tolist() == [[50, 5, 60, 20], [11, 9, 31, 49]]
    masks = merged.masks()
    assert masks[1].sum() == (21 * 41) and masks[1][9:50, 11:32].all()   # the kept detection's mask
    assert masks[0].sum() == 11 * 16
    # The dropped duplicate's keypoints are a second estimate: averaged by confidence (0.5 each).
    np.testing.assert_allclose(merged.keypoints[1, :, :2], np.tile([20.5, 29.5], (17, 1)))
    alone = merge_people([small_side, large_side], keypoint_reach=0)
    np.testing.assert_array_equal(alone.keypoints[1, :, :2], np.tile([21, 29], (17, 1)))


def test_a_kept_persons_keypoints_join_their_duplicates_near_ones_and_take_what_they_lack():
    kept, seen_again = result([(0.9, (10, 10, 30, 50))]), result([(0.5, (10, 10, 30, 50))])
    kept.keypoints[0, :, :2] = (20, 30)
    kept.keypoints[0, :, 2] = 0.6
    kept.keypoints[0, 16] = 0                                  # the kept person lacks the right ankle
    seen_again.keypoints[0, :, :2] = (23, 30)                  # 3 px off: averaged
    seen_again.keypoints[0, :, 2] = 0.3
    seen_again.keypoints[0, 9, :2] = (60, 30)                  # 40 px off (box scale 28): another joint
    seen_again.keypoints[0, 16] = (25, 48, 0.4)
    seen_again.keypoints[0, 3, 2] = 0                          # not found again: the kept one's stays
    joined = merge_people([kept, seen_again]).keypoints[0]
    np.testing.assert_allclose(joined[0], [21, 30, 0.6])       # (20 * 0.6 + 23 * 0.3) / 0.9, confidence kept
    np.testing.assert_allclose(joined[9], [20, 30, 0.6])
    np.testing.assert_allclose(joined[3], [20, 30, 0.6])
    np.testing.assert_allclose(joined[16], [25, 48, 0.4])


def test_overlapping_people_who_are_different_people_are_both_kept():
    # Boxes overlapping by less than half (IoU 0.2): two people side by side.
    merged = merge_people([result([(0.5, (10, 10, 39, 49))]), result([(0.8, (30, 10, 59, 49))])])
    assert len(merged) == 2 and merged.scores.tolist() == pytest.approx([0.8, 0.5])
    label = merged.label_map
    assert (label[10:50, 30:40] == 1).all(), "contested pixels go to the better-scored person"
    assert (label[10:50, 10:30] == 2).all()


def test_a_mask_overlap_drops_a_person_whose_box_differs():
    # The same mask with a much larger box (a stray keypoint far away): mask IoU says duplicate.
    a = result([(0.9, (10, 10, 30, 50))])
    b = result([(0.5, (10, 10, 30, 50))])
    b.boxes[0] = (0, 0, 79, 59)
    merged = merge_people([a, b])
    assert len(merged) == 1 and merged.scores[0] == pytest.approx(0.9)


def test_merging_refuses_results_of_different_images():
    with pytest.raises(ValueError, match="different image sizes"):
        merge_people([result([], size=(60, 80)), result([], size=(61, 80))])
    with pytest.raises(ValueError, match="at least one"):
        merge_people([])
    empty = merge_people([result([]), result([])])
    assert len(empty) == 0 and empty.label_map.shape == (60, 80)


def test_load_model_with_multi_scale_merges_every_side():
    """The default weights at 320 and 640 on the walkers' frame: the merged result is merge_people of
    the two sides' results, and every walker is still found."""
    from test_default_model import WALKERS, found_in, walkers_image

    image = walkers_image()
    predictor = load_model("default", device="cpu", multi_scale=(640, 320))
    assert isinstance(predictor, MultiScalePredictor)
    assert predictor.input_sides == (320, 640) and predictor.input_side == 320
    assert predictor.config is predictor.predictors[0].config
    singles = [side(image) for side in predictor.predictors]
    assert min(len(s) for s in singles) > 0
    expected = merge_people(singles)
    got = predictor(image)
    assert 0 < len(got) < sum(len(s) for s in singles)   # walkers found at both sides are kept once
    np.testing.assert_array_equal(got.label_map, expected.label_map)
    np.testing.assert_allclose(got.keypoints, expected.keypoints)
    assert all(found_in(box, got.keypoints[..., :2], got.keypoints[..., 2]) for box in WALKERS)
    assert set(predictor.last_timing) >= {"network_ms", "decode_ms", "total_ms"}
    # A side equal to input_size is not run twice.
    config = ModelConfig(neck_channels=16, head_channels=16, input_size=128)
    assert not isinstance(load_model(config, device="cpu", multi_scale=(128,)), MultiScalePredictor)


def test_the_default_weights_run_at_their_own_sides_unless_a_side_is_named():
    """The packaged model lists 640 besides 320 (ModelConfig.multi_scale): load_model runs both by
    default; a named input_size runs that side alone, and multi_scale=() the model's side alone."""
    from kdc_model.inference.predictor import Predictor

    default = load_model("default", device="cpu")
    assert default.config.multi_scale == (640,)
    assert isinstance(default, MultiScalePredictor) and default.input_sides == (320, 640)
    for alone, side in ((load_model("default", device="cpu", input_size=640), 640),
                        (load_model("default", device="cpu", multi_scale=()), 320)):
        assert isinstance(alone, Predictor) and alone.input_side == side
    assert load_model("default", device="cpu", input_size=480, multi_scale=(640,)).input_sides == (480, 640)


def test_a_model_config_keeps_its_sides_through_a_checkpoint(tmp_path):
    from kdc_model import KDCNet, save_checkpoint
    from kdc_model.network.checkpoint import load_checkpoint

    config = ModelConfig(neck_channels=16, head_channels=16, input_size=64, multi_scale=[128, 96])
    assert config.multi_scale == (128, 96)
    save_checkpoint(tmp_path / "m.safetensors", KDCNet(config), config)
    assert load_checkpoint(tmp_path / "m.safetensors")[0].multi_scale == (128, 96)
    assert load_model(tmp_path / "m.safetensors", device="cpu").input_sides == (64, 96, 128)
    with pytest.raises(ValueError, match="multi_scale must be at least 32, not 16"):
        ModelConfig(multi_scale=(16,))
    # Checkpoints written before the field existed run at their one side.
    assert ModelConfig.from_dict({"input_size": 64}).multi_scale == ()


def test_kdc_replay_takes_multi_scale_offline_only(tmp_path, capsys):
    from kdc_ros.replay.cli import main as kdc_replay, parse_args

    with pytest.raises(SystemExit) as exit_info:
        kdc_replay([str(tmp_path / "bag"), "--topic", "/camera/image_raw", "--out", str(tmp_path / "out"), "--live",
                    "--multi-scale", "640"])
    assert exit_info.value.code == 2 and "--multi-scale is for offline replay" in capsys.readouterr().err
    args = parse_args([str(tmp_path / "bag"), "--topic", "/t", "--out", str(tmp_path / "out"), "--multi-scale", "640", "480"])
    assert args.multi_scale == [640, 480]
