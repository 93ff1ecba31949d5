"""Decompression bombs are refused from their headers, before OpenCV decodes a pixel (issue 14).

Each bomb is a tiny file claiming a huge size, built from a real encoded image with its size fields
rewritten, in every format the node accepts (JPEG with fill bytes, with its frame header beyond
64 KiB, behind garbage; PNG; BMP; TIFF and BigTIFF, with huge tiles or strips; WebP lossy, lossless,
extended). cv2.imdecode is replaced by a failure in those tests, so a bomb that reached the decoder
fails them. The same files with an honest size decode to the original pixels, and a Hypothesis
property checks that whenever OpenCV decodes a mutated file, the header gave exactly its size.
"""
from __future__ import annotations

import struct
import time

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sensor_msgs.msg import CompressedImage

from image_samples import gradient_rgb
from kdc_ros.node.image_header import MAX_JPEG_MARKERS, HeaderError, read_header
from kdc_ros.node.image_io import DEFAULT_MAX_PIXELS, MAX_ASPECT_RATIO, ImageError, compressed_to_rgb, image_to_rgb

HUGE = (32000, 32000)   # 1.0e9 pixels: what the issue's 630-byte JPEG claimed


def encoded(ext: str, rgb: np.ndarray | None = None, params=()) -> bytes:
    rgb = gradient_rgb(24, 40) if rgb is None else rgb
    ok, data = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), list(params))
    assert ok
    return data.tobytes()


def message(data: bytes, fmt: str = "jpeg") -> CompressedImage:
    return CompressedImage(format=fmt, data=data)


def sof_offset(jpeg: bytes) -> int:
    """Position of the 0xFF of the first frame header (SOF0/1/2) of a file cv2 wrote (no fill bytes)."""
    return next(i for i in range(2, len(jpeg) - 1) if jpeg[i] == 0xFF and jpeg[i + 1] in (0xC0, 0xC1, 0xC2))


def with_jpeg_size(jpeg: bytes, width: int, height: int) -> bytes:
    at = sof_offset(jpeg)
    return jpeg[:at + 5] + struct.pack(">HH", height, width) + jpeg[at + 9:]


def before_sof(jpeg: bytes, inserted: bytes) -> bytes:
    at = sof_offset(jpeg)
    return jpeg[:at] + inserted + jpeg[at:]


def comments(total: int) -> bytes:
    """Valid COM segments holding `total` bytes of text between them."""
    out = b""
    while total > 0:
        chunk = min(total, 65533)
        out += b"\xff\xfe" + struct.pack(">H", chunk + 2) + b"c" * chunk
        total -= chunk
    return out


def fill_bytes_before_sof(jpeg: bytes, count: int = 5) -> bytes:
    """0xFF fill bytes before the SOF marker: legal, and the old parser gave up on them."""
    return before_sof(jpeg, b"\xff" * count)


def far_sof(jpeg: bytes) -> bytes:
    """The frame header beyond the first 64 KiB, behind valid comment segments."""
    return before_sof(jpeg, comments(200_000))


def garbage_before_sof(jpeg: bytes) -> bytes:
    """Non-marker bytes before the SOF: libjpeg skips them (with a warning) and reads on."""
    return before_sof(jpeg, b"junk\x00\x01\xff\x00")


def png_with_size(width: int, height: int) -> bytes:
    png = bytearray(encoded(".png"))
    png[16:24] = struct.pack(">II", width, height)   # the IHDR CRC is wrong now: libpng checks it only later
    return bytes(png)


def bmp_with_size(width: int, height: int) -> bytes:
    bmp = bytearray(encoded(".bmp"))
    bmp[18:26] = struct.pack("<ii", width, height)
    return bytes(bmp)


def bmp_core_header(width: int, height: int) -> bytes:
    """An OS/2 BMP (12-byte core header, 16-bit sizes) of a 24-bit image, with 64 bytes of pixels."""
    pixels = bytes(64)
    offset = 14 + 12
    return (b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset)
            + struct.pack("<IHHHH", 12, width, height, 1, 24) + pixels)


def tiff(entries: dict[int, int], big: bool = False, order: str = "<") -> bytes:
    """A TIFF (or BigTIFF) whose first directory holds `entries` {tag: LONG value} and nothing else."""
    magic = b"II" if order == "<" else b"MM"
    if big:
        head = magic + struct.pack(order + "HHHQ", 43, 8, 0, 16)
        body = struct.pack(order + "Q", len(entries))
        body += b"".join(struct.pack(order + "HHQQ", tag, 4, 1, value) for tag, value in sorted(entries.items()))
        return head + body + struct.pack(order + "Q", 0)
    head = magic + struct.pack(order + "HI", 42, 8)
    body = struct.pack(order + "H", len(entries))
    body += b"".join(struct.pack(order + "HHII", tag, 4, 1, value) for tag, value in sorted(entries.items()))
    return head + body + struct.pack(order + "I", 0)


def webp_vp8x(width: int, height: int) -> bytes:
    chunk = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00" + (width - 1).to_bytes(3, "little") \
        + (height - 1).to_bytes(3, "little")
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def webp_with_size(lossless: bool, width: int, height: int) -> bytes:
    webp = bytearray(encoded(".webp", params=[cv2.IMWRITE_WEBP_QUALITY, 101 if lossless else 80]))
    if lossless:
        assert webp[12:16] == b"VP8L"
        bits = struct.unpack_from("<I", webp, 21)[0] & ~((1 << 28) - 1)
        webp[21:25] = struct.pack("<I", bits | (width - 1) | ((height - 1) << 14))
    else:
        assert webp[12:16] == b"VP8 "
        webp[26:30] = struct.pack("<HH", width, height)
    return bytes(webp)


JPEG = encoded(".jpg")
BOMBS = {
    "jpeg": with_jpeg_size(JPEG, *HUGE),
    "jpeg, fill bytes before the SOF": fill_bytes_before_sof(with_jpeg_size(JPEG, *HUGE)),
    "jpeg, SOF beyond 64 KiB": far_sof(with_jpeg_size(JPEG, *HUGE)),
    "jpeg, garbage before the SOF": garbage_before_sof(with_jpeg_size(JPEG, *HUGE)),
    "progressive jpeg": with_jpeg_size(encoded(".jpg", params=[cv2.IMWRITE_JPEG_PROGRESSIVE, 1]), *HUGE),
    "png": png_with_size(*HUGE),
    "bmp": bmp_with_size(*HUGE),
    "bmp, top-down rows": bmp_with_size(HUGE[0], -HUGE[1]),
    "bmp, OS/2 core header": bmp_core_header(65535, 65535),
    "tiff": tiff({256: HUGE[0], 257: HUGE[1]}),
    "tiff, big-endian": tiff({256: HUGE[0], 257: HUGE[1]}, order=">"),
    "bigtiff": tiff({256: HUGE[0], 257: HUGE[1]}, big=True),
    "tiff, 16x16 image with 16384x16384 tiles": tiff({256: 16, 257: 16, 322: 16384, 323: 16384}),
    "tiff, 16x16 image with 2^28-row strips": tiff({256: 16, 257: 16, 278: 1 << 28}),
    "webp lossy": webp_with_size(False, 16383, 16383),
    "webp lossless": webp_with_size(True, 16384, 16384),
    "webp extended canvas": webp_vp8x(1 << 24, 1 << 24),
}


@pytest.fixture
def no_decoding(monkeypatch):
    monkeypatch.setattr(cv2, "imdecode", lambda *a, **k: pytest.fail("a decompression bomb reached cv2.imdecode"))


@pytest.mark.parametrize("name", list(BOMBS))
def test_bombs_are_refused_from_their_header_without_decoding(name, no_decoding):
    data = BOMBS[name]
    assert len(data) < 300_000
    start = time.perf_counter()
    with pytest.raises(ImageError, match="too large") as refused:
        compressed_to_rgb(message(data), DEFAULT_MAX_PIXELS)
    print(f"\n{name}: {len(data)} bytes refused in {(time.perf_counter() - start) * 1e3:.2f} ms: {refused.value}")
    assert "\n" not in str(refused.value)


def test_the_issue_bomb_was_a_real_one():
    """The fill-byte JPEG bomb is a file libjpeg accepts: its honest-size twin decodes."""
    honest = fill_bytes_before_sof(far_sof(garbage_before_sof(JPEG)))
    assert cv2.imdecode(np.frombuffer(honest, np.uint8), cv2.IMREAD_COLOR).shape == (24, 40, 3)


@pytest.mark.parametrize("name, data", [
    ("jpeg, fill bytes, far SOF and garbage", fill_bytes_before_sof(far_sof(garbage_before_sof(JPEG)))),
    ("progressive jpeg", encoded(".jpg", params=[cv2.IMWRITE_JPEG_PROGRESSIVE, 1])),
    ("png", encoded(".png")), ("bmp", encoded(".bmp")), ("tiff", encoded(".tiff")),
    ("webp lossless", encoded(".webp", params=[cv2.IMWRITE_WEBP_QUALITY, 101])),
    ("webp lossy", encoded(".webp", params=[cv2.IMWRITE_WEBP_QUALITY, 90])),
])
def test_normal_images_of_every_format_still_decode(name, data):
    rgb = gradient_rgb(24, 40)
    header = read_header(data)
    assert (header.width, header.height) == (40, 24)
    decoded = compressed_to_rgb(message(data))
    assert decoded.shape == rgb.shape
    assert np.abs(decoded.astype(int) - rgb).max() <= (0 if name in ("png", "bmp", "tiff", "webp lossless") else 16)


def test_the_decoder_buffer_counts_for_tiff():
    header = read_header(BOMBS["tiff, 16x16 image with 16384x16384 tiles"])
    assert (header.width, header.height, header.buffer_pixels) == (16, 16, 16384 * 16384)
    assert read_header(tiff({256: 100, 257: 80, 322: 256, 323: 256})).buffer_pixels == 256 * 256
    assert read_header(tiff({256: 100, 257: 80, 278: 0xFFFFFFFF})).buffer_pixels == 100 * 80


@pytest.mark.parametrize("data, says", [
    (b"GIF89a" + bytes(40), "not a JPEG, PNG, BMP, TIFF or WebP file (starts with 474946383961"),
    (b"\xff\xd8\xff" + b"\xfe\x00\x05abc" * 3, "ends before its frame header"),
    (b"\xff\xd8\xff\xda\x00\x08" + bytes(20), "no frame header (SOF) before its marker 0xFFDA"),
    (b"\xff\xd8\xff\xfe\x00\x01", "bogus length 1"),
    (b"\xff\xd8" + b"\xff\x01" * (MAX_JPEG_MARKERS + 1), f"more than {MAX_JPEG_MARKERS} markers"),
    (b"\xff\xd8" + b"\xff\x00" * 100_000, f"more than {MAX_JPEG_MARKERS} markers"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\x0dIDAT" + bytes(16), "does not start with its IHDR"),
    (b"BM" + bytes(12) + struct.pack("<I", 64) + bytes(30), None),
    (b"BM" + bytes(12) + struct.pack("<I", 20) + bytes(30), "info header of 20 bytes"),
    (tiff({256: 40}), "no ImageWidth or ImageLength"),
    (b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 60000), "more than 4096"),
    (b"II*\x00" + struct.pack("<I", 1 << 30), "TIFF directory cut short"),
    (b"RIFF" + bytes(4) + b"WEBPVP8Z" + bytes(20), "expected VP8, VP8L or VP8X"),
    (png_with_size(0, 24), "empty size 0x24"),
])
def test_unreadable_headers_are_refused_with_a_reason(data, says):
    if says is None:  # a 64-byte BMP info header with 0 x 0 pixels
        says = "empty size"
    with pytest.raises(HeaderError, match=says.replace("(", r"\(").replace(")", r"\)")):
        read_header(data)
    with pytest.raises(ImageError, match="cannot decode compressed image"):
        compressed_to_rgb(message(data))


def test_too_many_progressive_scans_are_refused(no_decoding):
    data = JPEG[:-2] + b"\xff\xda\x00\x02" * 1001 + b"\xff\xd9"
    with pytest.raises(ImageError, match="1002 scans"):  # and the image's own
        compressed_to_rgb(message(data))


def test_extreme_aspect_ratios_are_refused_raw_and_compressed(no_decoding):
    from image_samples import encode

    wide = encode(np.zeros((1, MAX_ASPECT_RATIO + 1, 3), np.uint8), "rgb8")
    with pytest.raises(ImageError, match=f"aspect ratio above {MAX_ASPECT_RATIO}:1"):
        image_to_rgb(wide)
    with pytest.raises(ImageError, match="16000000x1 has an aspect ratio"):
        compressed_to_rgb(message(png_with_size(16_000_000, 1)))
    assert image_to_rgb(encode(np.zeros((1, MAX_ASPECT_RATIO, 3), np.uint8), "rgb8")).shape == (1, 32, 3)


def test_message_strings_are_cut_in_errors():
    from image_samples import encode

    hostile = CompressedImage(format="x" * (4 << 20), data=b"GIF89a" + bytes(40))
    with pytest.raises(ImageError) as refused:
        compressed_to_rgb(hostile)
    assert len(str(refused.value)) < 300 and f"({4 << 20} characters)" in str(refused.value)
    raw = encode(np.zeros((4, 4, 3), np.uint8), "rgb8")
    raw.encoding = "e" * (4 << 20)
    with pytest.raises(ImageError) as refused:
        image_to_rgb(raw)
    assert len(str(refused.value)) < 400 and f"({4 << 20} characters)" in str(refused.value)


def test_a_readable_header_over_undecodable_data_is_refused_after_decoding():
    with pytest.raises(ImageError, match="truncated or corrupt PNG"):
        compressed_to_rgb(message(encoded(".png")[:40]))


# --- the header agrees with the decoder ------------------------------------------------------------
SEEDS = [JPEG, encoded(".jpg", params=[cv2.IMWRITE_JPEG_PROGRESSIVE, 1]), encoded(".png"), encoded(".bmp"),
         encoded(".tiff"), encoded(".webp", params=[cv2.IMWRITE_WEBP_QUALITY, 101]),
         encoded(".webp", params=[cv2.IMWRITE_WEBP_QUALITY, 80])]


@st.composite
def mutated_files(draw):
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["flip", "insert", "fill", "delete"]))
        if kind == "flip" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "fill":
            data[at:at] = b"\xff" * draw(st.integers(1, 4))
        else:
            del data[at:at + draw(st.integers(1, 8))]
    return bytes(data)


@settings(max_examples=300, deadline=None, database=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(mutated_files())
def test_whenever_opencv_decodes_a_file_the_header_gave_its_size(data):
    """The only way past the size check is a header that reads small while the decoder decodes
    something else. Files whose header cannot be read, or reads too large, never reach the decoder."""
    try:
        header = read_header(data)
    except HeaderError:
        return
    if header.buffer_pixels > 1 << 22:
        return  # refused before decoding below any max_pixels this test would use
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    finally:
        cv2.utils.logging.setLogLevel(level)
    if decoded is not None:
        assert (decoded.shape[1], decoded.shape[0]) == (header.width, header.height), header
