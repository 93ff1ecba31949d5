"""Real CRC-32s in the MCAP files we write (rosbags writes 0 everywhere, MCAP's "no CRC").

Without them a damaged bag reads back as good data: a flipped bit in an image is an image. rosbags'
MCAP writer offers no CRC option, so CrcMcapWriter adds them: each chunk's CRC (of its uncompressed
records, which every MCAP reader, rosbags included, checks when it is not 0) is computed from the
chunk's bytes in memory and written into the chunk header; the data section CRC (DataEnd) and the
summary CRC (Footer) are computed when the file is closed, by one streaming read of it.

Layouts (MCAP spec): a record is opcode u8, content length u64, content. Chunk content starts with
message_start_time u64, message_end_time u64, uncompressed_size u64, uncompressed_crc u32. DataEnd
is data_section_crc u32 over every byte before the DataEnd record; the Footer is summary_start u64,
summary_offset_start u64, summary_crc u32 over the summary section and the Footer up to summary_crc.
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

from rosbags.rosbag2.storage_mcap import McapWriter

MAGIC = b"\x89MCAP0\r\n"
OP_FOOTER, OP_CHUNK, OP_DATA_END = 0x02, 0x06, 0x0F
_RECORD_HEAD = struct.Struct("<BQ")
_CHUNK_HEAD = struct.Struct("<QQQI")
_CHUNK_CRC_AT = _RECORD_HEAD.size + 24                 # in a chunk record, from its opcode
_FOOTER = struct.Struct("<BQQQI")                      # opcode, length, summary_start, summary_offset_start, crc
_DATA_END_SIZE = _RECORD_HEAD.size + 4
_BLOCK = 1 << 20


class CrcMcapWriter(McapWriter):
    """rosbags' MCAP storage writer, writing the chunk, data section and summary CRC-32s."""

    def close_chunk(self) -> None:
        with self.chunk.bio.getbuffer() as records:
            crc = zlib.crc32(records)
        start = self.bio.tell()                        # close_chunk writes the chunk record first, here
        super().close_chunk()
        end = self.bio.tell()
        self.bio.seek(start + _CHUNK_CRC_AT)
        self.bio.write(struct.pack("<I", crc))
        self.bio.seek(end)

    def close(self, version: int, metadata: str) -> None:
        super().close(version, metadata)
        write_section_crcs(self.path)


def write_section_crcs(path: Path) -> None:
    """Fill in the DataEnd and Footer CRCs of a finished MCAP file (with a summary section)."""
    with Path(path).open("r+b") as file:
        footer_at, summary_start = _footer(file)
        data_end_at = summary_start - _DATA_END_SIZE
        file.seek(data_end_at)
        if _RECORD_HEAD.unpack(file.read(_RECORD_HEAD.size)) != (OP_DATA_END, 4):
            raise ValueError(f"{path}: no DataEnd record before the summary at {summary_start}")
        _patch(file, data_end_at + _RECORD_HEAD.size, _crc_of_range(file, 0, data_end_at))
        _patch(file, footer_at + _FOOTER.size - 4, _crc_of_range(file, summary_start, footer_at + _FOOTER.size - 4))


def crc_problems(path: Path) -> list[str]:
    """Every CRC of an MCAP file that is missing (0) or wrong, as a line each; [] for a sound file.
    (Uncompressed chunks only: what MessageBagWriter writes.)"""
    problems = []
    with Path(path).open("rb") as file:
        footer_at, summary_start = _footer(file)
        position = len(MAGIC)
        while position < summary_start - _DATA_END_SIZE:
            file.seek(position)
            opcode, length = _RECORD_HEAD.unpack(file.read(_RECORD_HEAD.size))
            if opcode == OP_CHUNK:
                problems += _chunk_problems(file.read(length), position)
            position += _RECORD_HEAD.size + length
        file.seek(summary_start - 4)
        (stored,) = struct.unpack("<I", file.read(4))
        problems += _compare("data section", stored, _crc_of_range(file, 0, summary_start - _DATA_END_SIZE))
        file.seek(footer_at + _FOOTER.size - 4)
        (stored,) = struct.unpack("<I", file.read(4))
        problems += _compare("summary", stored, _crc_of_range(file, summary_start, footer_at + _FOOTER.size - 4))
    return problems


def _chunk_problems(content: bytes, position: int) -> list[str]:
    _, _, size, stored = _CHUNK_HEAD.unpack_from(content)
    (name_length,) = struct.unpack_from("<I", content, _CHUNK_HEAD.size)
    if name_length:
        return [f"chunk at byte {position}: compressed, not checked"]
    records = content[_CHUNK_HEAD.size + 4 + 8:][:size]
    return _compare(f"chunk at byte {position}", stored, zlib.crc32(records))


def _compare(what: str, stored: int, actual: int) -> list[str]:
    if stored == 0:
        return [f"{what}: no CRC"]
    return [] if stored == actual else [f"{what}: CRC {stored:08x}, the bytes give {actual:08x}"]


def _footer(file) -> tuple[int, int]:
    """(offset of the Footer record, summary_start) of an MCAP file."""
    end = file.seek(0, 2)
    footer_at = end - len(MAGIC) - _FOOTER.size
    file.seek(footer_at)
    opcode, length, summary_start, _, _ = _FOOTER.unpack(file.read(_FOOTER.size))
    if opcode != OP_FOOTER or length != 20 or file.read(len(MAGIC)) != MAGIC or not 0 < summary_start <= footer_at:
        raise ValueError(f"{file.name}: not a closed MCAP file with a summary section")
    return footer_at, summary_start


def _crc_of_range(file, start: int, end: int) -> int:
    crc = 0
    file.seek(start)
    while start < end:
        block = file.read(min(_BLOCK, end - start))
        if not block:
            raise ValueError(f"{file.name}: ends at byte {start}, before {end}")
        crc = zlib.crc32(block, crc)
        start += len(block)
    return crc


def _patch(file, offset: int, crc: int) -> None:
    file.seek(offset)
    file.write(struct.pack("<I", crc))
