"""An image topic of a rosbag2, read back as rclpy sensor_msgs messages, with errors that name the problem.

Opens a bag folder or a bare .mcap/.db3 file with rosbags. A damaged MCAP recording (truncated,
metadata.yaml missing, corrupt tail) is salvaged into a temporary copy: the frames before the damage
are read and `damage` says where it is, so callers can report it after using them.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import yaml
from rclpy.serialization import deserialize_message
from rosbags.highlevel import AnyReader
from sensor_msgs.msg import CompressedImage, Image

from .make_bag import FRAME_NAMES_KEY
from .mcap_salvage import salvage_mcap
from .typestore import bag_typestore

IMAGE_TYPES = {"sensor_msgs/msg/Image": Image, "sensor_msgs/msg/CompressedImage": CompressedImage}


class BagError(RuntimeError):
    """A bag that cannot give the requested images; the message names the bag and the problem."""


@dataclass
class BagFrame:
    index: int           # position of the message on the topic, from 0
    log_time_ns: int     # when the bag recorded it
    msg: Image | CompressedImage


class ImageBag:
    """The messages of one image topic of a bag. Use as a context manager."""

    def __init__(self, path: str | Path, topic: str) -> None:
        self.path = Path(path)
        self.topic = topic
        self.damage: str | None = None   # where a damaged bag stopped being readable
        self._salvage_folder: Path | None = None
        self._reader: AnyReader | None = None
        if not self.path.exists():
            raise BagError(f"{self.path}: no such bag")
        self._reader = self._open()
        try:
            self._connections = self._image_connections()
        except BagError:
            self.close()
            raise
        self.msgtype = self._connections[0].msgtype
        self.message_class = IMAGE_TYPES[self.msgtype]
        self.count = sum(connection.msgcount for connection in self._connections)

    @property
    def compressed(self) -> bool:
        return self.message_class is CompressedImage

    @property
    def rate_hz(self) -> float | None:
        """Mean message rate of the recording (None for fewer than two messages)."""
        seconds = self._reader.duration / 1e9
        return (self.count - 1) / seconds if self.count > 1 and seconds > 0 else None

    def frame_names(self) -> list[str] | None:
        """Names of the frames in order, as kdc-bag recorded them in metadata.yaml (None if absent)."""
        metadata = self.path / "metadata.yaml"
        if not metadata.is_file():
            return None
        try:
            info = yaml.safe_load(metadata.read_text())["rosbag2_bagfile_information"]
            names = (info.get("custom_data") or {}).get(FRAME_NAMES_KEY)
            return json.loads(names) if names else None
        except (yaml.YAMLError, KeyError, TypeError, ValueError):
            return None

    def frames(self) -> Iterator[BagFrame]:
        """The topic's messages in recording order. Damage met on the way ends the stream and is
        recorded in `damage` instead of raising, so the frames before it are still used."""
        messages = self._reader.messages(connections=self._connections)
        index = 0
        while True:
            try:
                _, log_time_ns, raw = next(messages)
            except StopIteration:
                return
            except Exception as err:  # rosbags raises ReaderError, struct.error, zstd errors... on damage
                self.damage = f"{self.path}: unreadable after {index} frames on {self.topic}: {err}"
                return
            try:
                msg = deserialize_message(raw, self.message_class)
            except Exception as err:
                raise BagError(f"{self.path}: message {index} on {self.topic} is not a valid "
                               f"{self.msgtype}: {err}") from None
            yield BagFrame(index, log_time_ns, msg)
            index += 1

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._salvage_folder is not None:
            shutil.rmtree(self._salvage_folder, ignore_errors=True)
            self._salvage_folder = None

    def __enter__(self) -> "ImageBag":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _open(self) -> AnyReader:
        try:
            return _open_reader(self.path)
        except Exception as err:
            error = err
        damaged = _only_mcap_file(self.path)
        if damaged is None:
            raise BagError(f"{self.path}: not a readable bag: {error}")
        self._salvage_folder = Path(tempfile.mkdtemp(prefix="kdc_bag_salvage_"))
        repaired = self._salvage_folder / damaged.name
        report = salvage_mcap(damaged, repaired)
        if report is None:
            self.close()
            raise BagError(f"{damaged}: not an MCAP file ({error})")
        try:
            reader = _open_reader(repaired)
        except Exception as err:
            self.close()
            raise BagError(f"{damaged}: damaged beyond repair: {error}; salvage failed: {err}") from None
        self.damage = f"{report.describe(damaged)} ({error})"
        return reader

    def _image_connections(self):
        connections = [c for c in self._reader.connections if c.topic == self.topic]
        if not connections:
            topics = ", ".join(f"{c.topic} ({c.msgtype})" for c in self._reader.connections) or "none"
            if self.damage:
                raise BagError(f"{self.path}: no topic {self.topic} before the damage ({self.damage}); "
                               f"topics there: {topics}")
            raise BagError(f"{self.path}: no topic {self.topic}; topics in the bag: {topics}")
        wrong = sorted({c.msgtype for c in connections} - set(IMAGE_TYPES))
        if wrong or len({c.msgtype for c in connections}) > 1:
            raise BagError(f"{self.path}: topic {self.topic} carries {', '.join(sorted({c.msgtype for c in connections}))}, "
                           f"expected one of {', '.join(IMAGE_TYPES)}")
        return connections


def _open_reader(path: Path) -> AnyReader:
    reader = AnyReader([path], default_typestore=bag_typestore())
    reader.open()
    return reader


def _only_mcap_file(path: Path) -> Path | None:
    """The MCAP file a damaged bag consists of: `path` itself, or the one .mcap in the bag folder."""
    if path.is_file():
        return path if path.suffix == ".mcap" else None
    files = sorted(path.glob("*.mcap"))
    return files[0] if len(files) == 1 else None
