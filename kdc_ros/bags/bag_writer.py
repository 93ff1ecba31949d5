"""Write rclpy messages into a rosbag2 (mcap or sqlite3) through rosbags.

Messages are serialised by rclpy itself (the same CDR bytes rosbag2 records), so every message
builder of kdc_ros works unchanged; rosbags only stores the bytes and the embedded definitions.
MCAP files carry real CRC-32s (kdc_ros.bags.mcap_crc), so a damaged bag is detected when read.
"""
from __future__ import annotations

from pathlib import Path

from rclpy.serialization import serialize_message
from rosbags.rosbag2 import StoragePlugin, Writer

from .mcap_crc import CrcMcapWriter
from .typestore import bag_typestore

STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
BAG_VERSION = 9  # rosbag2 metadata version of Jazzy/Kilted (older distros read 8; rosbags reads both)


class _CrcWriter(Writer):
    """rosbags' Writer with the MCAP storage writing CRCs."""

    STORAGE_PLUGINS = {**Writer.STORAGE_PLUGINS, StoragePlugin.MCAP: CrcMcapWriter}


def message_type_name(msg) -> str:
    """"sensor_msgs/msg/Image" for an rclpy sensor_msgs.msg.Image instance."""
    return f"{type(msg).__module__.split('.')[0]}/msg/{type(msg).__name__}"


def stamp_nanoseconds(header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


class MessageBagWriter:
    """A rosbag2 being written; one connection per topic, created on the topic's first message."""

    def __init__(self, path: str | Path, storage: str = "mcap") -> None:
        if storage not in STORAGES:
            raise ValueError(f"unknown storage {storage!r}; choose one of {', '.join(STORAGES)}")
        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f"{self.path} already exists; rosbag2 never overwrites a bag")
        self._writer = _CrcWriter(self.path, version=BAG_VERSION, storage_plugin=STORAGES[storage])
        self._connections = {}
        self._writer.open()

    def write(self, topic: str, msg, log_time_ns: int) -> None:
        connection = self._connections.get(topic)
        if connection is None:
            connection = self._writer.add_connection(topic, message_type_name(msg), typestore=bag_typestore())
            self._connections[topic] = connection
        self._writer.write(connection, log_time_ns, serialize_message(msg))

    def set_custom_data(self, key: str, value: str) -> None:
        """A string stored in the bag's metadata.yaml (custom_data), e.g. the source of the frames."""
        self._writer.set_custom_data(key, value)

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> "MessageBagWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
