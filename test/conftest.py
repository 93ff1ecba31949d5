"""Test-wide settings: every DDS participant stays on loopback, in a domain of this run's own."""
import os
import random

# Set before any test imports rclpy. A random domain keeps parallel runs from seeing each other.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ["ROS_LOCALHOST_ONLY"] = "1"
os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(1, 100)))

# One intra-op thread: node tests run an inference thread beside the executor and DDS threads, and on
# a 2-core machine two torch threads per op starve them (seen: 10-50x slower steps under load).
import torch  # noqa: E402

torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` run wherever CUDA is present and are skipped, with the reason, elsewhere."""
    import pytest

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA: torch.cuda.is_available() is False on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
