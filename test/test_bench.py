"""kdc_ros.bench: the harness on our model only (3 tiny frames, real rclpy node), and its pieces.

No peer venv is ever created here: peers are skipped (--no-peers) or their venv step is faked.
"""
from __future__ import annotations

import json
import re

import pytest

from kdc_ros.bench import ROW_KEYS, check_row, run_producers
from kdc_ros.bench import peers as bench_peers
from kdc_ros.bench.__main__ import main
from kdc_ros.bench.output import format_table
from kdc_ros.bench.runners.timing import failed_row, row, time_calls


def test_bench_our_rows_only(tmp_path, capsys):
    out, venvs = tmp_path / "out", tmp_path / "venvs"
    status = main(["--out", str(out), "--frames", "3", "--frame-size", "96x64", "--sizes", "64",
                   "--warmup", "1", "--no-peers", "--weights", "random", "--venv-root", str(venvs)])
    assert status == 0
    rows = json.loads((out / "bench.json").read_text())
    assert [r["system"] for r in rows] == ["kdc_node", "kdc_model"]
    for r in rows:
        check_row(r)
        assert set(ROW_KEYS) <= set(r) and "error" not in r
        assert r["backend"] == "torch" and r["input"] == 64 and r["calls"] == 3
        assert 0 < r["p50_ms"] <= r["p95_ms"]
    assert rows[0]["lost"] == 0
    assert (out / "bench.png").stat().st_size > 1000
    assert json.loads((out / "bench_meta.json").read_text())["frames"]["count"] == 3
    table = capsys.readouterr().out
    assert "kdc_model" in table and "1.00x" in table  # the node row is the ratio reference
    assert not venvs.exists()


def test_bench_on_video_frames_reports_people_and_stages(tmp_path, capsys):
    """Frames spread over the whole clip; every row with people per frame and p50/p95/max per stage."""
    import cv2
    import numpy as np

    from kdc_ros.bench.frames import video_frames

    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 64))
    for index in range(9):  # frame i is grey level 20 * i: which frames were picked shows in their pixels
        writer.write(np.full((64, 96, 3), 20 * index, np.uint8))
    writer.release()
    levels = [int(round(f.mean() / 20)) for f in video_frames(video, 3)]
    assert levels == [0, 4, 8]

    out = tmp_path / "out"
    assert main(["--out", str(out), "--video", str(video), "--frames", "3", "--sizes", "64", "--warmup", "1",
                 "--no-peers", "--weights", "random"]) == 0
    rows = {r["system"]: r for r in json.loads((out / "bench.json").read_text())}
    for name, stages in (("kdc_model", ("preprocess", "network", "decode")),
                         ("kdc_node", ("preprocess", "network", "decode", "overhead"))):
        row = rows[name]
        assert "people_per_frame" in row and set(row["stages_ms"]) == set(stages)
        for figures in row["stages_ms"].values():
            assert figures["p50"] <= figures["p95"] <= figures["max"]
    assert rows["kdc_node"]["stages_ms"]["network"]["p50"] > 0
    assert {"conversion", "tracking", "messages", "publish"} <= set(rows["kdc_node"]["node_stages_ms"])
    meta = json.loads((out / "bench_meta.json").read_text())
    assert meta["frames"]["kind"] == "real" and meta["frames"]["size"] == "96x64"
    assert "preprocess p50/p95/max" in capsys.readouterr().out
    assert main(["--out", str(out), "--video", str(tmp_path / "missing.avi"), "--no-peers"]) == 2


def test_stage_figures_and_overhead():
    from kdc_ros.bench.runners.timing import stage_stats, with_overhead

    calls = [with_overhead({"network": 10.0, "decode": float(d)}, 20.0 + d) for d in range(1, 21)]
    figures = stage_stats(calls)
    assert figures["overhead"] == {"p50": 10.0, "p95": 10.0, "max": 10.0}
    assert figures["decode"]["max"] == 20.0 and figures["decode"]["p50"] == 10.5


def test_peers_run_in_the_asked_backends_where_they_have_them():
    from kdc_ros.bench.peers import peer_backends

    assert peer_backends("yolo11n-pose", ["onnxruntime"]) == ("onnxruntime",)
    assert peer_backends("yolo11n-pose", ["torch", "onnxruntime"]) == ("torch", "onnxruntime")
    assert peer_backends("yolo11n-pose", None) == ("torch", "onnxruntime")
    assert peer_backends("mediapipe-pose", ["onnxruntime"]) == ("tflite",)  # its only one


def test_rows_schema_and_failures():
    good = row("x", "torch", 320, [10.0, 20.0, 30.0])
    assert check_row(good)["fps"] == pytest.approx(50.0) and good["p50_ms"] == 20.0
    check_row(failed_row("x", "torch", 320, "boom"))
    with pytest.raises(ValueError, match="lacks"):
        check_row({"system": "x", "backend": "torch", "input": 320, "fps": 1.0})
    with pytest.raises(ValueError, match="positive"):
        check_row({**good, "fps": None})

    def broken(frames, size):
        raise RuntimeError("no model")

    rows = run_producers({"ok": lambda f, s: row("ok", "torch", s, [5.0]), "broken": broken}, [0], [32, 64],
                         log=lambda _: None)
    assert [(r["system"], r["input"], "error" in r) for r in rows] == [
        ("ok", 32, False), ("broken", 32, True), ("ok", 64, False), ("broken", 64, True)]


def test_time_calls_warms_up_then_times_every_frame():
    seen = []
    times = time_calls(seen.append, [1, 2, 3], warmup=2, rounds=2, latency=lambda _, wall: 7.0)
    assert seen == [1, 2, 1, 2, 3, 1, 2, 3] and times == [7.0] * 6


def test_table_ratio_against_node():
    rows = [row("kdc_node", "torch", 320, [50.0]), row("yolo11n-pose", "torch", 320, [25.0]),
            failed_row("yolo11n-seg", "onnxruntime", 320, "export failed\ndetails")]
    table = format_table(rows)
    assert "2.00x" in table and "FAILED: export failed" in table and "details" not in table


def test_peer_setup_failure_gives_failed_rows(tmp_path):
    import numpy as np

    blocked = tmp_path / "not_a_folder"
    blocked.write_text("")  # the venvs cannot be made under a file: every peer's setup fails
    rows = bench_peers.peer_rows(np.zeros((2, 8, 8, 3), np.uint8), 320, venv_root=blocked / "venvs",
                                 work_dir=tmp_path / "work", log=lambda _: None)
    assert {(r["system"], r["backend"]) for r in rows} == {
        ("yolo11n-pose", "torch"), ("yolo11n-pose", "onnxruntime"), ("yolo11n-seg", "torch"),
        ("yolo11n-seg", "onnxruntime"), ("mediapipe-pose", "tflite")}
    assert all("Not a directory" in r["error"] for r in rows), rows[0]["error"]
    for r in rows:
        check_row(r)


def test_repeated_runs_are_pooled():
    from kdc_ros.bench import pool_rows

    rows = pool_rows([row("a", "torch", 320, [10.0, 10.0]), failed_row("b", "torch", 320, "boom"),
                      row("a", "torch", 320, [40.0, 40.0]), row("b", "torch", 320, [5.0])])
    a, b = rows
    assert a["calls"] == 4 and a["runs"] == 2 and a["fps"] == pytest.approx(40.0) and a["p50_ms"] == 25.0
    assert "error" not in b and b["calls"] == 1


def test_peer_people_score_through_our_evaluator():
    """A YOLO-style {keypoints, boxes, scores} of the ground truth itself scores keypoint AP 1 through
    kdc_model.training.evaluate, with no segmentation entries; extra low-score people are cut to COCO's 20."""
    import numpy as np

    from kdc_model.training.evaluate import evaluate_predictions
    from kdc_ros.bench.peer_accuracy import COCO_MAX_DETS, keypoint_entries, people_result, split_counts

    rng = np.random.default_rng(0)
    truth = [np.concatenate([rng.uniform(20, 60, (17, 2)) + 100 * i, np.full((17, 1), 2.0)], 1) for i in range(2)]
    gt = {"images": [{"id": 1, "height": 240, "width": 320}],
          "annotations": [{"id": i + 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "num_keypoints": 17,
                           "keypoints": kp.reshape(-1).tolist(), "area": 1600.0,
                           "bbox": [*kp[:, :2].min(0), 40.0, 40.0]} for i, kp in enumerate(truth)]}
    found = [np.concatenate([kp[:, :2], np.full((17, 1), 0.9)], 1) for kp in truth]
    junk = [np.full((17, 3), 5.0)] * 30
    people = {"keypoints": [k.tolist() for k in junk + found], "boxes": [[0, 0, 1, 1]] * 32,
              "scores": [0.01] * 30 + [0.8, 0.9]}
    result = people_result(people, 240, 320)
    assert len(result) == COCO_MAX_DETS and result.scores[0] == pytest.approx(0.9)
    assert result.label_map.shape == (240, 320) and not result.label_map.any()
    entries = keypoint_entries(result, 1)
    assert all("segmentation" not in e and len(e["keypoints"]) == 51 for e in entries)
    metrics = evaluate_predictions(gt, entries)
    assert metrics["keypoints_ap"] == pytest.approx(1.0) and metrics["keypoints_images"] == 1
    assert split_counts(gt) == {"images": 1, "people": 2, "images_with_keypoints": 1, "people_with_keypoints": 2}
    assert len(people_result({"keypoints": [], "boxes": [], "scores": []}, 4, 4)) == 0


def test_peer_accuracy_venv_failure_is_an_error_row(tmp_path):
    import yaml

    from kdc_ros.bench import peer_accuracy
    from synthetic_coco import write_dataset

    write_dataset(tmp_path / "data", count=2, size=64)
    recipe = {"data": {"sources": [{"name": "synthetic", "annotations": "annotations.json", "images": "images",
                                    "val_group": "coco_val2017", "val": {"file_names": ["scene_001.png"]}}]}}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    blocked = tmp_path / "not_a_folder"
    blocked.write_text("")
    assert peer_accuracy.main(["--data-root", str(tmp_path / "data"), "--config", str(tmp_path / "recipe.yaml"),
                               "--out", str(tmp_path / "out"), "--sizes", "320", "--venv-root", str(blocked / "venvs"),
                               "--checkpoint", str(tmp_path / "none.safetensors")]) == 1
    rows = json.loads((tmp_path / "out" / "metrics.json").read_text())["groups"]["coco_val2017"]["rows"]
    assert [r["system"] for r in rows] == ["yolo11n-pose"] and "Not a directory" in rows[0]["error"]


def test_bench_sizes_merged_sides_for_us_and_the_largest_side_for_peers(tmp_path, monkeypatch):
    """An input size "64+96" runs our model at both sides, people merged (as the node runs a model
    that lists more sides); a peer runs at 96 and its row is filed under "64+96" to be compared."""
    import numpy as np

    from kdc_ros.bench import input_sides, parse_size
    from kdc_ros.bench.kdc import kdc_predictor

    assert parse_size("320") == 320 and parse_size("640+320") == "320+640" and input_sides("320+640") == (320, 640)
    for bad in ("320+", "a", "0+320"):
        with pytest.raises(ValueError, match=re.escape(repr(bad))):
            parse_size(bad)
    with pytest.raises(SystemExit):
        main(["--sizes", "320+x"])
    assert kdc_predictor("64+96", weights="random")[0].input_sides == (64, 96)

    out = tmp_path / "out"
    assert main(["--out", str(out), "--frames", "2", "--frame-size", "96x64", "--sizes", "64+96", "--warmup", "1",
                 "--no-peers", "--weights", "random"]) == 0
    rows = json.loads((out / "bench.json").read_text())
    assert {r["system"]: r["input"] for r in rows} == {"kdc_node": "64+96", "kdc_model": "64+96"}

    asked = []

    def fake_runner(venv, script, args, work_dir, venv_root=None, log=print):
        asked.append(int(args[args.index("--size") + 1]))
        return [row("yolo11n-pose", "torch", asked[-1], [5.0, 6.0])]

    monkeypatch.setattr(bench_peers, "run_runner", fake_runner)
    frames = np.zeros((2, 64, 96, 3), np.uint8)
    [peer] = bench_peers.peer_rows(frames, "64+96", systems=("yolo11n-pose",), work_dir=tmp_path / "work")
    assert asked == [96] and peer["input"] == "64+96" and peer["note"].startswith("at 96, the largest side")


def test_peer_accuracy_scores_a_model_at_its_own_sides_first(tmp_path):
    """A checkpoint that lists more sides gets a row at its own sides merged (what load_model runs
    by default), then one per --sizes side alone."""
    import torch
    import yaml

    from kdc_model import KDCNet, ModelConfig, save_checkpoint
    from kdc_ros.bench import peer_accuracy
    from synthetic_coco import write_dataset

    write_dataset(tmp_path / "data", count=2, size=64)
    recipe = {"data": {"sources": [{"name": "synthetic", "annotations": "annotations.json", "images": "images",
                                    "val_group": "coco_val2017", "val": "all"}]}}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    torch.manual_seed(0)
    config = ModelConfig(input_size=64, multi_scale=(96,), neck_channels=16, head_channels=16)
    save_checkpoint(tmp_path / "m.safetensors", KDCNet(config), config)
    assert peer_accuracy.main(["--data-root", str(tmp_path / "data"), "--config", str(tmp_path / "recipe.yaml"),
                               "--out", str(tmp_path / "out"), "--sizes", "64", "--no-yolo",
                               "--checkpoint", str(tmp_path / "m.safetensors")]) == 0
    rows = json.loads((tmp_path / "out" / "metrics.json").read_text())["groups"]["coco_val2017"]["rows"]
    assert [(r["system"], r["input"]) for r in rows] == [("kdc_model+96", 64), ("kdc_model", 64)]
