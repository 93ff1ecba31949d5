"""Recover the intact beginning of a damaged MCAP file (a recording cut off by a crash or a full disk).

rosbags only opens MCAP files that end in a valid footer. Every MCAP record is an opcode byte, a
uint64 length and its content, so walking the records finds where the damage starts; the records
before it, plus the complete messages of a cut-off uncompressed chunk, are copied into a new file
closed with an empty DataEnd and a footer without summary, which rosbags reads by scanning.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

MAGIC = b"\x89MCAP0\r\n"
OP_FOOTER, OP_CHUNK, OP_DATA_END = 0x02, 0x06, 0x0F
_RECORD_HEAD = struct.Struct("<BQ")            # opcode, content length
_CHUNK_HEAD = struct.Struct("<QQQI")           # start time, end time, uncompressed size, crc
_COPY_BLOCK = 1 << 20


@dataclass
class SalvageReport:
    intact_bytes: int   # bytes of the damaged file that were kept
    total_bytes: int

    def describe(self, path: Path) -> str:
        return f"{path}: damaged at byte {self.intact_bytes} of {self.total_bytes}; read the messages before it"


def salvage_mcap(damaged: Path, repaired: Path) -> SalvageReport | None:
    """Write the intact records of `damaged` to `repaired`; None when it is no MCAP file at all."""
    total = damaged.stat().st_size
    with damaged.open("rb") as source:
        if source.read(len(MAGIC)) != MAGIC:
            return None
        intact, tail = _intact_prefix(source, total)
        with repaired.open("wb") as out:
            source.seek(0)
            _copy(source, out, intact)
            out.write(tail)
            out.write(_record(OP_DATA_END, struct.pack("<I", 0)))          # no data section crc
            out.write(_record(OP_FOOTER, struct.pack("<QQI", 0, 0, 0)))    # no summary
            out.write(MAGIC)
    return SalvageReport(intact + len(tail), total)


def _intact_prefix(source: BinaryIO, total: int) -> tuple[int, bytes]:
    """(length of the run of complete data records from the start, complete records lifted out of a
    cut-off uncompressed chunk that follows them)."""
    position = len(MAGIC)
    while position + _RECORD_HEAD.size <= total:
        source.seek(position)
        opcode, length = _RECORD_HEAD.unpack(source.read(_RECORD_HEAD.size))
        if opcode in (OP_DATA_END, OP_FOOTER):       # the data section is complete
            return position, b""
        end = position + _RECORD_HEAD.size + length
        if opcode == 0 or end > total:
            tail = _complete_records_of_chunk(source.read(total - source.tell())) if opcode == OP_CHUNK else b""
            return position, tail
        position = end
    return position, b""


def _complete_records_of_chunk(content: bytes) -> bytes:
    """The complete inner records of a cut-off chunk record's content, when it is uncompressed."""
    head = _CHUNK_HEAD.size
    if len(content) < head + 4:
        return b""
    (name_length,) = struct.unpack_from("<I", content, head)
    if name_length != 0:                             # compressed: nothing usable without the whole chunk
        return b""
    position = start = head + 4 + 8                  # after the empty compression name and compressed size
    while position + _RECORD_HEAD.size <= len(content):
        _, length = _RECORD_HEAD.unpack_from(content, position)
        if position + _RECORD_HEAD.size + length > len(content):
            break
        position += _RECORD_HEAD.size + length
    return content[start:position]


def _record(opcode: int, content: bytes) -> bytes:
    return _RECORD_HEAD.pack(opcode, len(content)) + content


def _copy(source: BinaryIO, out: BinaryIO, size: int) -> None:
    while size > 0:
        block = source.read(min(size, _COPY_BLOCK))
        if not block:
            break
        out.write(block)
        size -= len(block)
