"""The pixel size of a compressed image, read from its header before a single pixel is decoded.

OpenCV decodes up to 2^30 pixels of whatever a message holds before the node can look at the result,
so a 600-byte file claiming 32000 x 32000 pixels costs seconds and gigabytes. The node reads the size
here first and refuses too-large images without decoding them. Only the formats parsed here reach
the decoder (JPEG, PNG, BMP, TIFF, WebP): anything else OpenCV could decode (GIF, AVIF, JPEG 2000,
PNM, HDR, ...) is refused as unsupported, so no header goes unread.

Each parser reads what its decoder reads, the way the decoder reads it: for JPEG the markers as
libjpeg's next_marker() finds them (garbage bytes and any number of 0xFF fill bytes before a marker,
a stuffed zero is no marker), through every segment up to the frame header (SOF), however far into
the file it lies; PNG's IHDR; BMP's info header (OpenCV's own decoder); TIFF's first directory
(libtiff), including the tile or strip buffer OpenCV allocates; WebP's canvas (libwebp). Work is
bounded by a marker and an entry budget, so a hostile header is refused in microseconds too.
"""
from __future__ import annotations

import re
import struct
from dataclasses import dataclass

import numpy as np

FORMATS = ("JPEG", "PNG", "BMP", "TIFF", "WebP")
MAX_JPEG_MARKERS = 1024     # real files have a few dozen before the frame header (ICC profiles: <= 255 APP2)
MAX_JPEG_SCANS = 1000       # libjpeg-turbo's progressive files have ~10; every scan costs a pass over the image
MAX_TIFF_ENTRIES = 4096     # libtiff's own sanity limit for a directory

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIFF_SIGNATURES = {b"II*\x00": ("<", False), b"MM\x00*": (">", False),
                    b"II+\x00": ("<", True), b"MM\x00+": (">", True)}
# SOF0..SOF15 carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) are other segments.
_JPEG_FRAME_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE_MARKERS = frozenset([0x01, *range(0xD0, 0xD8)])   # TEM, RST0-7: no length field
_JPEG_SOI, _JPEG_EOI, _JPEG_SOS = 0xD8, 0xD9, 0xDA
_FILL_BYTES = re.compile(rb"\xff+")
_TIFF_WIDTH, _TIFF_LENGTH, _TIFF_ROWS_PER_STRIP, _TIFF_TILE_WIDTH, _TIFF_TILE_LENGTH = 256, 257, 278, 322, 323
_TIFF_INTEGER_TYPES = {3: "u2", 4: "u4", 16: "u8"}   # SHORT, LONG, LONG8 (BigTIFF)


class HeaderError(ValueError):
    """A compressed image whose header cannot be read (or is of no supported format); says why."""


@dataclass(frozen=True)
class CompressedHeader:
    format: str             # one of FORMATS
    width: int
    height: int
    buffer_pixels: int      # pixels of the largest buffer the decoder allocates (a TIFF tile may exceed the image)


def read_header(data: bytes) -> CompressedHeader:
    """The format and size of the compressed image `data`; HeaderError when they cannot be read.

    The format is told by the same signatures OpenCV's decoders check, so the header read here is
    the one the decoder OpenCV picks will read.
    """
    if data[:2] == b"BM":
        return _bmp(data)
    if data[:3] == b"\xff\xd8\xff":
        return _jpeg(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp(data)
    if data[:8] == _PNG_SIGNATURE:
        return _png(data)
    if data[:4] in _TIFF_SIGNATURES:
        return _tiff(data)
    raise HeaderError(f"not a {', '.join(FORMATS[:-1])} or {FORMATS[-1]} file (starts with {data[:8].hex()})")


def _sized(fmt: str, width: int, height: int) -> CompressedHeader:
    if width <= 0 or height <= 0:
        raise HeaderError(f"{fmt} header gives an empty size {width}x{height}")
    return CompressedHeader(fmt, width, height, width * height)


def _need(data: bytes, end: int, what: str) -> None:
    if len(data) < end:
        raise HeaderError(f"{what} cut short ({len(data)} bytes)")


# --- JPEG ---------------------------------------------------------------------------------------------
def _jpeg(data: bytes) -> CompressedHeader:
    """The size in the frame header (SOF), found by walking every segment from the start."""
    position = 2                                   # after SOI
    for _ in range(MAX_JPEG_MARKERS):
        marker, position = _next_jpeg_marker(data, position)
        if marker is None:
            raise HeaderError("JPEG ends before its frame header (no SOF marker)")
        if marker == 0 or marker in _JPEG_STANDALONE_MARKERS:
            continue                               # a stuffed zero is not a marker; RSTn/TEM have no length
        if marker in (_JPEG_SOS, _JPEG_EOI, _JPEG_SOI):
            raise HeaderError(f"JPEG has no frame header (SOF) before its marker 0xFF{marker:02X}")
        _need(data, position + 2, "JPEG segment")
        length = int.from_bytes(data[position:position + 2], "big")
        if length < 2:
            raise HeaderError(f"JPEG segment 0xFF{marker:02X} has a bogus length {length}")
        if marker in _JPEG_FRAME_MARKERS:
            _need(data, position + 7, "JPEG frame header")
            height, width = struct.unpack_from(">HH", data, position + 3)
            _check_scans(data)
            return _sized("JPEG", width, height)
        position += length                         # skip the segment, however long (COM, APPn, DQT, ...)
    raise HeaderError(f"JPEG has more than {MAX_JPEG_MARKERS} markers before its frame header")


def _next_jpeg_marker(data: bytes, position: int) -> tuple[int | None, int]:
    """(the byte after the next run of 0xFF bytes, the position after it), like libjpeg's next_marker():
    bytes before an 0xFF are skipped as garbage, and so is any number of 0xFF fill bytes."""
    start = data.find(b"\xff", position)
    if start < 0:
        return None, len(data)
    after = _FILL_BYTES.match(data, start).end()
    if after >= len(data):
        return None, len(data)
    return data[after], after + 1


def _check_scans(data: bytes) -> None:
    # Entropy-coded data never holds 0xFF 0xDA (0xFF is followed by 0 or RSTn there), so this counts
    # the scans, each a full pass over the image for the decoder (a progressive-JPEG CPU bomb).
    scans = data.count(b"\xff\xda")
    if scans > MAX_JPEG_SCANS:
        raise HeaderError(f"JPEG has {scans} scans (more than {MAX_JPEG_SCANS})")


# --- PNG, BMP, WebP -------------------------------------------------------------------------------------
def _png(data: bytes) -> CompressedHeader:
    _need(data, 24, "PNG header")
    if data[12:16] != b"IHDR":
        raise HeaderError(f"PNG does not start with its IHDR chunk (found {data[12:16]!r})")
    width, height = struct.unpack_from(">II", data, 16)
    return _sized("PNG", width, height)


def _bmp(data: bytes) -> CompressedHeader:
    """OpenCV's BMP decoder: a 12-byte OS/2 core header (16-bit sizes) or one of 36+ bytes (32-bit,
    a negative height meaning top-down rows); it reads no other."""
    _need(data, 18, "BMP header")
    (info_size,) = struct.unpack_from("<I", data, 14)
    if info_size >= 36:
        _need(data, 26, "BMP info header")
        width, height = struct.unpack_from("<ii", data, 18)
        return _sized("BMP", width, abs(height))
    if info_size == 12:
        _need(data, 22, "BMP core header")
        width, height = struct.unpack_from("<HH", data, 18)
        return _sized("BMP", width, height)
    raise HeaderError(f"BMP info header of {info_size} bytes is not one OpenCV reads (12, or 36 and more)")


def _webp(data: bytes) -> CompressedHeader:
    """libwebp's size: the canvas of an extended file (VP8X; its image may not exceed it), else the
    size in the lossy (VP8) or lossless (VP8L) bitstream header."""
    _need(data, 30, "WebP header")
    chunk = data[12:16]
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return _sized("WebP", width, height)
    if chunk == b"VP8 ":
        if data[23:26] != b"\x9d\x01\x2a":
            raise HeaderError("WebP lossy bitstream has no key frame start code")
        width, height = struct.unpack_from("<HH", data, 26)
        return _sized("WebP", width & 0x3FFF, height & 0x3FFF)
    if chunk == b"VP8L":
        if data[20] != 0x2F:
            raise HeaderError("WebP lossless bitstream has no signature byte")
        (bits,) = struct.unpack_from("<I", data, 21)
        return _sized("WebP", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    raise HeaderError(f"WebP starts with a {chunk!r} chunk (expected VP8, VP8L or VP8X)")


# --- TIFF -----------------------------------------------------------------------------------------------
def _tiff(data: bytes) -> CompressedHeader:
    """The first directory's ImageWidth and ImageLength (the page OpenCV decodes). OpenCV reads a
    tile (or a strip of RowsPerStrip rows) into one buffer, and those sizes are the file's to claim:
    a 1-pixel image with 16384 x 16384 tiles would cost a 1 GB buffer, so they count as well."""
    order, big = _TIFF_SIGNATURES[data[:4]]
    tags = _tiff_first_directory(data, order, big)
    if _TIFF_WIDTH not in tags or _TIFF_LENGTH not in tags:
        raise HeaderError("TIFF first directory has no ImageWidth or ImageLength")
    header = _sized("TIFF", tags[_TIFF_WIDTH], tags[_TIFF_LENGTH])
    if _TIFF_TILE_WIDTH in tags or _TIFF_TILE_LENGTH in tags:
        buffer_width, buffer_rows = tags.get(_TIFF_TILE_WIDTH, 0), tags.get(_TIFF_TILE_LENGTH, 0)
    else:
        buffer_width, buffer_rows = header.width, tags.get(_TIFF_ROWS_PER_STRIP, 0)
    if buffer_rows in (0, 0xFFFFFFFF):            # OpenCV: absent or "all rows" = the image height
        buffer_rows = header.height
    buffer_pixels = (buffer_width or header.width) * buffer_rows
    return CompressedHeader("TIFF", header.width, header.height, max(header.buffer_pixels, buffer_pixels))


def _tiff_first_directory(data: bytes, order: str, big: bool) -> dict[int, int]:
    """{tag: value} of the single-integer entries of the first image file directory (first one wins)."""
    if big:
        _need(data, 16, "BigTIFF header")
        (offset,) = struct.unpack_from(order + "Q", data, 8)
        count_format, entry_size, value_size = "Q", 20, 8
    else:
        _need(data, 8, "TIFF header")
        (offset,) = struct.unpack_from(order + "I", data, 4)
        count_format, entry_size, value_size = "H", 12, 4
    count_size = struct.calcsize(count_format)
    _need(data, offset + count_size, "TIFF directory")
    (count,) = struct.unpack_from(order + count_format, data, offset)
    if count > MAX_TIFF_ENTRIES:
        raise HeaderError(f"TIFF directory claims {count} entries (more than {MAX_TIFF_ENTRIES})")
    _need(data, offset + count_size + count * entry_size, "TIFF directory")
    count_type = "u8" if big else "u4"
    entries = np.frombuffer(data, np.dtype([("tag", order + "u2"), ("type", order + "u2"),
                                            ("count", order + count_type), ("value", f"V{value_size}")]),
                            count=count, offset=offset + count_size)
    tags: dict[int, int] = {}
    for tag, kind, number, value in entries.tolist():
        if tag in tags or kind not in _TIFF_INTEGER_TYPES or number != 1:
            continue
        width = np.dtype(_TIFF_INTEGER_TYPES[kind]).itemsize
        if width <= value_size:                    # the value sits left-justified in the entry
            tags[tag] = int(np.frombuffer(value[:width], order + _TIFF_INTEGER_TYPES[kind])[0])
    return tags
