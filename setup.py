"""kdc_ros (the ROS 2 node and tools) and kdc_model (the KDC network), one ament_python package."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "kdc_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    description="KDC multi-person pose + instance segmentation for ROS 2",
    license="Apache-2.0",
    packages=find_packages(include=["kdc_ros", "kdc_ros.*", "kdc_model", "kdc_model.*"]),
    package_data={"kdc_model": ["weights/*.safetensors", "weights/*.int8.onnx", "weights/*.json",
                                "configs/*.yaml"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.rviz")),
    ],
    install_requires=["setuptools"],
    zip_safe=False,
    python_requires=">=3.10",
    entry_points={
        "console_scripts": [
            "kdc_node = kdc_ros.node:main",
            "kdc_lifecycle_node = kdc_ros.node.lifecycle:main",
            "kdc-bag = kdc_ros.bags.make_bag:main",
            "kdc-replay = kdc_ros.replay.cli:main",
        ],
    },
)
