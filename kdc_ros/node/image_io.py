"""sensor_msgs/Image and CompressedImage -> RGB uint8 array (H x W x 3), with NumPy and OpenCV only.

No cv_bridge: it is not on PyPI and breaks across NumPy major versions. Every refusal is an
ImageError whose message names the problem, so the node can log it and count it. Strings taken from
a message (encoding, format) are cut to MAX_SHOWN_CHARS in those messages: a hostile 4 MiB encoding
must not become a 4 MiB log line or diagnostics value.

Sizes are checked before any pixel work: width x height against max_pixels, and the aspect ratio
against MAX_ASPECT_RATIO (a 16,000,000 x 1 frame is within max_pixels but costs seconds and a
gigabyte to letterbox, and no person fits in it). A compressed image's size comes from its header
(kdc_ros.node.image_header), so a decompression bomb is refused before it is decoded.
"""
from __future__ import annotations

import array

import cv2
import numpy as np

from .image_header import HeaderError, read_header

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
MAX_ASPECT_RATIO = 32       # longer side / shorter side; wider than 32:9 panoramas, far below a line scan
MAX_SHOWN_CHARS = 64        # of a string from a message, in an error message


class ImageError(ValueError):
    """An image message the node cannot turn into RGB pixels; the message says why."""


def image_to_rgb(msg, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """RGB uint8 [H, W, 3] pixels of a sensor_msgs/Image (a new writable array, never a view of msg)."""
    encoding = msg.encoding.lower()
    if encoding not in _CONVERSIONS:
        raise ImageError(f"unknown encoding {shown(msg.encoding)} (supported: {', '.join(SUPPORTED_ENCODINGS)})")
    height, width, step = msg.height, msg.width, msg.step
    if height == 0 or width == 0 or len(msg.data) == 0:
        raise ImageError(f"empty image ({width}x{height}, {len(msg.data)} bytes)")
    check_size(width, height, max_pixels)
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
    """RGB uint8 [H, W, 3] pixels of a sensor_msgs/CompressedImage (JPEG, PNG, BMP, TIFF or WebP)."""
    data = np.frombuffer(msg.data, np.uint8)
    if data.size == 0:
        raise ImageError(f"empty compressed image (format {shown(msg.format)})")
    # The size from the header first, so a decompression bomb is refused before it is decoded.
    try:
        header = read_header(data.tobytes())
    except HeaderError as err:
        raise ImageError(f"cannot decode compressed image (format {shown(msg.format)}, {data.size} bytes): "
                         f"{err}") from None
    check_size(header.width, header.height, max_pixels)
    if header.buffer_pixels > max_pixels:
        raise ImageError(f"{header.format} decoding buffer too large: {header.buffer_pixels} pixels > "
                         f"max_pixels {max_pixels} (tiles or strips larger than the image)")
    if header.format == "JPEG" and not _ends_jpeg(data):
        # libjpeg "decodes" a truncated file into a half-grey image; refuse it instead.
        raise ImageError(f"truncated JPEG ({data.size} bytes, no end-of-image marker)")
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageError(f"cannot decode compressed image (format {shown(msg.format)}, {data.size} bytes): "
                         f"truncated or corrupt {header.format}")
    check_size(bgr.shape[1], bgr.shape[0], max_pixels)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def rgb_to_image(rgb: np.ndarray, header):
    """sensor_msgs/Image (rgb8) holding `rgb` [H, W, 3] uint8, with `header`."""
    return pixels_to_image(np.asarray(rgb, np.uint8), "rgb8", header)


def pixels_to_image(pixels: np.ndarray, encoding: str, header):
    """sensor_msgs/Image of `pixels` [H, W] or [H, W, C] (already in the dtype and byte order that
    `encoding` says), rows unpadded, little-endian flag 0.

    The bytes go into the message's array.array once. A generated message copies whatever its
    constructor or `data` setter is given into a new array element by element (about 1 ms for a
    VGA frame here), except that with field checks on (rosidl's check_fields, Jazzy and later) the
    setter keeps an array.array it is given; where messages have no check_fields, it is given bytes.
    """
    from sensor_msgs.msg import Image

    pixels = np.ascontiguousarray(pixels)
    height, width = pixels.shape[:2]
    fields = dict(header=header, height=height, width=width, encoding=encoding, is_bigendian=0,
                  step=width * pixels.itemsize * (pixels.shape[2] if pixels.ndim == 3 else 1))
    if "_check_fields" not in getattr(Image, "__slots__", ()):
        return Image(**fields, data=pixels.tobytes())
    data = array.array("B")
    data.frombytes(pixels.reshape(-1).view(np.uint8))
    message = Image(**fields, check_fields=True)
    message.data = data
    return message


def shown(text: str) -> str:
    """`text` quoted for an error message, cut to MAX_SHOWN_CHARS characters (it may come from a hostile
    message: a log line or diagnostics value must stay short whatever it holds)."""
    text = str(text)
    if len(text) <= MAX_SHOWN_CHARS:
        return repr(text)
    return f"{text[:MAX_SHOWN_CHARS]!r}... ({len(text)} characters)"


def check_size(width: int, height: int, max_pixels: int) -> None:
    """ImageError unless a width x height image is within max_pixels and MAX_ASPECT_RATIO."""
    if width * height > max_pixels:
        raise ImageError(f"image too large: {width}x{height} = {width * height} pixels > max_pixels {max_pixels}")
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise ImageError(f"image {width}x{height} has an aspect ratio above {MAX_ASPECT_RATIO}:1")


def _ends_jpeg(data: np.ndarray) -> bool:
    # Some cameras pad after the end-of-image marker; look for it near the end.
    tail = data[-64:].tobytes()
    return b"\xff\xd9" in tail
