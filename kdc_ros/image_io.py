"""sensor_msgs/Image and CompressedImage -> RGB uint8 array (H x W x 3), with NumPy and OpenCV only.

No cv_bridge: it is not on PyPI and breaks across NumPy major versions. Every refusal is an
ImageError whose message names the problem, so the node can log it and count it.
"""
from __future__ import annotations

import cv2
import numpy as np

# Encoding -> (bytes per pixel, OpenCV conversion to RGB or None for a NumPy path).
# YUV 4:2:2 packs two pixels in four bytes; ROS's "yuv422" is UYVY, "yuv422_yuy2" is YUYV.
# Bayer names give the colour order of the top-left 2x2 cell; OpenCV names its codes by the second
# row's pattern, hence the shifted names (the same table as cv_bridge).
_CONVERSIONS: dict[str, tuple[int, int | None]] = {
    "rgb8": (3, None),
    "bgr8": (3, cv2.COLOR_BGR2RGB),
    "rgba8": (4, cv2.COLOR_RGBA2RGB),
    "bgra8": (4, cv2.COLOR_BGRA2RGB),
    "mono8": (1, cv2.COLOR_GRAY2RGB),
    "8uc1": (1, cv2.COLOR_GRAY2RGB),
    "mono16": (2, cv2.COLOR_GRAY2RGB),
    "16uc1": (2, cv2.COLOR_GRAY2RGB),
    "yuv422": (2, cv2.COLOR_YUV2RGB_UYVY),
    "uyvy": (2, cv2.COLOR_YUV2RGB_UYVY),
    "yuv422_yuy2": (2, cv2.COLOR_YUV2RGB_YUYV),
    "yuyv": (2, cv2.COLOR_YUV2RGB_YUYV),
    "bayer_rggb8": (1, cv2.COLOR_BayerBG2RGB),
    "bayer_bggr8": (1, cv2.COLOR_BayerRG2RGB),
    "bayer_gbrg8": (1, cv2.COLOR_BayerGR2RGB),
    "bayer_grbg8": (1, cv2.COLOR_BayerGB2RGB),
}
SUPPORTED_ENCODINGS = tuple(sorted(_CONVERSIONS))
_SIXTEEN_BIT = ("mono16", "16uc1")
_YUV422 = ("yuv422", "uyvy", "yuv422_yuy2", "yuyv")

DEFAULT_MAX_PIXELS = 4096 * 4096


class ImageError(ValueError):
    """An image message the node cannot turn into RGB pixels; the message says why."""


def image_to_rgb(msg, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """RGB uint8 [H, W, 3] pixels of a sensor_msgs/Image (a new writable array, never a view of msg)."""
    encoding = msg.encoding.lower()
    if encoding not in _CONVERSIONS:
        raise ImageError(f"unknown encoding {msg.encoding!r} (supported: {', '.join(SUPPORTED_ENCODINGS)})")
    height, width, step = msg.height, msg.width, msg.step
    if height == 0 or width == 0 or len(msg.data) == 0:
        raise ImageError(f"empty image ({width}x{height}, {len(msg.data)} bytes)")
    _check_size(width, height, max_pixels)
    bytes_per_pixel, conversion = _CONVERSIONS[encoding]
    if encoding in _YUV422 and width % 2:
        raise ImageError(f"{encoding} needs an even width, got {width}")
    if step < width * bytes_per_pixel:
        raise ImageError(f"step {step} is less than width {width} x {bytes_per_pixel} bytes per pixel")
    if len(msg.data) != step * height:
        raise ImageError(f"data has {len(msg.data)} bytes, step {step} x height {height} needs {step * height}")

    rows = np.frombuffer(msg.data, np.uint8).reshape(height, step)[:, :width * bytes_per_pixel]
    if encoding in _SIXTEEN_BIT:
        dtype = np.dtype(">u2" if msg.is_bigendian else "<u2")
        # The high byte of a 16-bit sample is its 8-bit value (a full-range scale, not per image).
        pixels = (rows.copy().view(dtype) >> 8).astype(np.uint8)
    elif encoding in _YUV422:
        pixels = rows.reshape(height, width, 2)
    else:
        pixels = rows.reshape(height, width, bytes_per_pixel)
    if conversion is None:
        return pixels.copy()  # a writable array that does not pin the message buffer
    return cv2.cvtColor(np.ascontiguousarray(pixels), conversion)


def compressed_to_rgb(msg, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """RGB uint8 [H, W, 3] pixels of a sensor_msgs/CompressedImage (JPEG, PNG or anything OpenCV reads)."""
    data = np.frombuffer(msg.data, np.uint8)
    if data.size == 0:
        raise ImageError(f"empty compressed image (format {msg.format!r})")
    # Read the size from the header first, so a decompression bomb is refused before it is decoded.
    size = _header_size(data)
    if size is not None:
        _check_size(*size, max_pixels)
    if _is_jpeg(data) and not _ends_jpeg(data):
        # libjpeg "decodes" a truncated file into a half-grey image; refuse it instead.
        raise ImageError(f"truncated JPEG ({data.size} bytes, no end-of-image marker)")
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageError(f"cannot decode compressed image (format {msg.format!r}, {data.size} bytes): "
                         f"truncated or not an image")
    _check_size(bgr.shape[1], bgr.shape[0], max_pixels)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def rgb_to_image(rgb: np.ndarray, header):
    """sensor_msgs/Image (rgb8) holding `rgb` [H, W, 3] uint8, with `header`."""
    from sensor_msgs.msg import Image

    height, width = rgb.shape[:2]
    return Image(header=header, height=height, width=width, encoding="rgb8", is_bigendian=0,
                 step=3 * width, data=np.ascontiguousarray(rgb).tobytes())


def _check_size(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise ImageError(f"image too large: {width}x{height} = {width * height} pixels > max_pixels {max_pixels}")


def _is_jpeg(data: np.ndarray) -> bool:
    return data.size >= 3 and data[0] == 0xFF and data[1] == 0xD8


def _ends_jpeg(data: np.ndarray) -> bool:
    # Some cameras pad after the end-of-image marker; look for it near the end.
    tail = data[-64:].tobytes()
    return b"\xff\xd9" in tail


def _header_size(data: np.ndarray) -> tuple[int, int] | None:
    """(width, height) from a PNG or JPEG header, None for other formats or a header we cannot read."""
    raw = data[:65536].tobytes()
    if raw[:8] == b"\x89PNG\r\n\x1a\n" and len(raw) >= 24:
        return int.from_bytes(raw[16:20], "big"), int.from_bytes(raw[20:24], "big")
    if raw[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(raw) and raw[i] == 0xFF:
            marker = raw[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
                i += 2
                continue
            length = int.from_bytes(raw[i + 2:i + 4], "big")
            # SOF0..SOF15 carry the frame size (C4, C8 and CC are other tables).
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                return int.from_bytes(raw[i + 7:i + 9], "big"), int.from_bytes(raw[i + 5:i + 7], "big")
            i += 2 + length
    return None
