"""kdc_model works with ROS made unimportable, and pulls in no ROS module."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import importlib.abc
    import sys

    ROS_PREFIXES = ("rclpy", "rosidl", "sensor_msgs", "kdc_ros", "kdc_msgs")

    class BlockRos(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.startswith(ROS_PREFIXES):
                raise ImportError(f"ROS is blocked in this test: {name}")
            return None

    sys.meta_path.insert(0, BlockRos())

    import numpy as np
    import torch

    import kdc_model
    from kdc_model import ModelConfig, load_model

    torch.set_num_threads(1)
    predictor = load_model(ModelConfig(input_size=64, neck_channels=16, head_channels=16), device="cpu")
    result = predictor(np.zeros((40, 70, 3), np.uint8))
    assert result.label_map.shape == (40, 70), result.label_map.shape
    loaded = sorted(m for m in sys.modules if m.startswith(ROS_PREFIXES))
    assert not loaded, loaded
    print("ok")
""")


def test_kdc_model_builds_and_predicts_without_ros():
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")
