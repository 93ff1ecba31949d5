"""kdc_model.training.evaluate: real COCOeval on synthetic ground truth: perfect predictions score AP 1,
none score 0, images without people are fine, and a broken annotation file is named."""
import json

import numpy as np
import pytest

from kdc_model.training.coco import image_people, load_annotations
from kdc_model.training.evaluate import METRIC_KEYS, evaluate_predictions, format_metrics, main, result_to_coco
from kdc_model import PoseSegResult
from synthetic_coco import write_dataset


@pytest.fixture(scope="module")
def ground_truth(tmp_path_factory):
    folder = tmp_path_factory.mktemp("eval")
    _, images, annotations = write_dataset(folder, count=4, size=160, crowd_probability=0.5, empty_images=1)
    return images, annotations, load_annotations(annotations)


def _perfect_results(data: dict) -> list[dict]:
    """The ground truth itself, as PoseSegResults turned into COCO results."""
    results = []
    for image in data["images"]:
        anns = [a for a in data["annotations"] if a["image_id"] == image["id"]]
        keypoints, masks, _, _ = image_people(anns, image["height"], image["width"])
        label_map = np.zeros((image["height"], image["width"]), np.uint16)
        for i, mask in enumerate(masks):
            label_map[mask] = i + 1
        keypoints = keypoints.copy()
        keypoints[..., 2] = (keypoints[..., 2] > 0).astype(np.float32)
        n = len(keypoints)
        boxes = np.array([[*kp[:, :2].min(0), *kp[:, :2].max(0)] for kp in keypoints], np.float32).reshape(n, 4)
        result = PoseSegResult(keypoints.astype(np.float32), np.linspace(1.0, 0.9, n, dtype=np.float32),
                               boxes, label_map, np.ones(n, np.float32))
        results.extend(result_to_coco(result, image["id"]))
    return results


def test_perfect_predictions_score_one(ground_truth):
    _, _, data = ground_truth
    metrics = evaluate_predictions(data, _perfect_results(data))
    assert metrics["keypoints_ap"] == pytest.approx(1.0)
    assert metrics["keypoints_ap50"] == pytest.approx(1.0)
    assert metrics["segm_ap"] == pytest.approx(1.0)
    assert metrics["keypoints_images"] == 5  # every image counts, the person-free one included
    assert set(METRIC_KEYS) <= set(metrics)
    assert "keypoints" in format_metrics(metrics)


def test_no_predictions_score_zero(ground_truth):
    _, _, data = ground_truth
    metrics = evaluate_predictions(data, [])
    assert all(metrics[k] == 0.0 for k in METRIC_KEYS)
    # Predictions only on the empty image match nothing.
    stray = [dict(r, image_id=5) for r in _perfect_results(data)[:2]]
    metrics = evaluate_predictions(data, stray)
    assert metrics["keypoints_ap"] <= 0.0 and metrics["segm_ap"] <= 0.0


def test_a_wrong_half_halves_recall(ground_truth):
    _, _, data = ground_truth
    results = _perfect_results(data)
    for r in results[::2]:
        r["keypoints"] = [v + 40.0 if i % 3 < 2 else v for i, v in enumerate(r["keypoints"])]
    metrics = evaluate_predictions(data, results)
    assert 0.2 < metrics["keypoints_ap"] < 0.9


def test_cli_names_a_malformed_annotation_file(tmp_path, capsys):
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"images": "nope"}))
    assert main(["--images", str(tmp_path), "--annotations", str(broken), "--out", str(tmp_path / "out")]) == 2
    assert "broken.json" in capsys.readouterr().err


def test_scores_exactly_as_cocoeval_with_false_positives_on_an_empty_image(ground_truth):
    """Jittered predictions plus confident people on the person-free image: the project's AP is
    pycocotools' own (COCOeval over every image of the file), so those false positives cost AP."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from kdc_model.skeleton import OKS_SIGMAS

    _, annotations, data = ground_truth
    rng = np.random.default_rng(0)
    results = _perfect_results(data)
    for r in results:
        kp = np.asarray(r["keypoints"]).reshape(-1, 3)
        kp[:, :2] += rng.normal(0, 3.0, (len(kp), 2))
        r["keypoints"] = kp.reshape(-1).tolist()
    empty = next(i["id"] for i in data["images"] if not any(a["image_id"] == i["id"] for a in data["annotations"]))
    results += [dict(r, image_id=empty, score=2.0) for r in results[:3]]
    ours = evaluate_predictions(data, results)

    reference = {}
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(annotations))
        for iou_type in ("keypoints", "segm"):
            evaluator = COCOeval(gt, gt.loadRes([dict(r) for r in results]), iou_type)
            if iou_type == "keypoints":
                evaluator.params.kpt_oks_sigmas = OKS_SIGMAS.astype(np.float64)
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
            reference[iou_type] = evaluator.stats[0]
    assert ours["keypoints_ap"] == pytest.approx(reference["keypoints"], abs=1e-9)
    assert ours["segm_ap"] == pytest.approx(reference["segm"], abs=1e-9)
    # The false positives cost something: without them the same predictions score higher.
    clean = evaluate_predictions(data, [r for r in results if r["image_id"] != empty])
    assert clean["keypoints_ap"] > ours["keypoints_ap"]


def test_the_evaluation_runs_by_its_short_name_too():
    """python -m kdc_model.evaluate is kdc_model.training.evaluate (the name the issues use)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "kdc_model.evaluate", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "--multi-scale" in done.stdout and "--input-size" in done.stdout
    missing = subprocess.run([sys.executable, "-m", "kdc_model.evaluate", "--images", "nowhere", "--annotations",
                              "nowhere.json", "--out", "out"], capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "nowhere.json" in missing.stderr
