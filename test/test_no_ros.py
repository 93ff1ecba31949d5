"""kdc_model works with ROS made unimportable: every one of its modules imports, the model builds and
predicts, and no ROS module (nor kdc_ros) is ever pulled in."""
import ast
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

    import importlib
    import pkgutil

    import numpy as np
    import torch

    import kdc_model
    from kdc_model import ModelConfig, load_model

    modules = [m.name for m in pkgutil.walk_packages(kdc_model.__path__, "kdc_model.")]
    for name in modules:
        importlib.import_module(name)  # an ImportError here names the module that reaches for ROS
    assert len(modules) >= 25, modules

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


def test_no_kdc_model_module_imports_ros_even_inside_a_function():
    """Imports inside functions run late (a CLI's main): read every import statement of the source."""
    ros = ("rclpy", "rosidl", "sensor_msgs", "std_msgs", "kdc_ros", "kdc_msgs", "launch")
    found = []
    for path in sorted((REPO / "kdc_model").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            found += [f"{path.relative_to(REPO)}: {name}" for name in names if name.split(".")[0] in ros]
    assert not found, found
