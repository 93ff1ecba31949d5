"""The rosbags typestore of our bags: the ROS 2 distro's standard types plus kdc_msgs from its .msg texts.

Registering kdc_msgs from the .msg files makes every bag we write embed the message definitions, so
any rosbags reader (or `ros2 bag`) can decode kdc_msgs/PoseSeg without our package installed.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

MESSAGES_PACKAGE = "kdc_msgs"
# The wheels on PyPI are ROS 2 Kilted; its CDR layout and definitions of the standard types.
DISTRO_STORE = Stores.ROS2_KILTED


def message_definitions_folder() -> Path:
    """kdc_msgs/msg of the installed package (what the running code was built from), else the source tree."""
    try:
        from ament_index_python.packages import get_package_share_directory
        installed = Path(get_package_share_directory(MESSAGES_PACKAGE)) / "msg"
        if installed.is_dir():
            return installed
    except (ImportError, LookupError):
        pass
    source = Path(__file__).resolve().parents[2] / MESSAGES_PACKAGE / "msg"
    if not source.is_dir():
        raise FileNotFoundError(f"cannot find the {MESSAGES_PACKAGE} .msg files (not installed, no {source})")
    return source


@lru_cache(maxsize=1)
def bag_typestore() -> Typestore:
    """The distro typestore with every kdc_msgs message registered (built once per process)."""
    store = get_typestore(DISTRO_STORE)
    types = {}
    for path in sorted(message_definitions_folder().glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"{MESSAGES_PACKAGE}/msg/{path.stem}"))
    store.register(types)
    return store
