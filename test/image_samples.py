"""Test images: known RGB arrays and their sensor_msgs encodings (the inverse of kdc_ros.node.image_io)."""
from __future__ import annotations

import cv2
import numpy as np
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

# ROS Bayer encoding -> colour order of its top-left 2x2 cell (row by row); mosaics are built by hand.
BAYER_ORDERS = {"bayer_rggb8": "RGGB", "bayer_bggr8": "BGGR", "bayer_gbrg8": "GBRG", "bayer_grbg8": "GRBG"}


def sample_rgb(height: int = 24, width: int = 32, seed: int = 0) -> np.ndarray:
    """A smooth RGB test image whose horizontal pixel pairs share a colour (exact under 4:2:2)."""
    rng = np.random.default_rng(seed)
    pairs = rng.integers(16, 240, (height, width // 2, 3), dtype=np.uint8)
    return np.repeat(pairs, 2, axis=1)


def encode(rgb: np.ndarray, encoding: str, header: Header | None = None, padding: int = 0,
           bigendian: bool = False) -> Image:
    """sensor_msgs/Image of `rgb` in `encoding`, each row followed by `padding` junk bytes."""
    height, width = rgb.shape[:2]
    if encoding == "rgb8":
        pixels = rgb
    elif encoding == "bgr8":
        pixels = rgb[..., ::-1]
    elif encoding in ("rgba8", "bgra8"):
        color = rgb if encoding == "rgba8" else rgb[..., ::-1]
        pixels = np.concatenate([color, np.full((height, width, 1), 77, np.uint8)], axis=2)
    elif encoding == "mono8":
        pixels = rgb[..., 0]
    elif encoding == "mono16":
        pixels = rgb[..., 0].astype(">u2" if bigendian else "<u2") * 257
    elif encoding in ("yuv422", "uyvy", "yuyv", "yuv422_yuy2"):
        # BT.601 video range, what camera YUV 4:2:2 (and OpenCV's YUV2RGB_UYVY/YUYV) use.
        r, g, b = (rgb[..., c].astype(np.float64) for c in range(3))
        y = np.rint(16 + 0.257 * r + 0.504 * g + 0.098 * b)
        u = np.rint(128 - 0.148 * r - 0.291 * g + 0.439 * b)[:, 0::2]
        v = np.rint(128 + 0.439 * r - 0.368 * g - 0.071 * b)[:, 0::2]
        packed = np.empty((height, width // 2, 4), np.uint8)
        if encoding in ("yuv422", "uyvy"):
            packed[..., 0], packed[..., 1], packed[..., 2], packed[..., 3] = u, y[:, 0::2], v, y[:, 1::2]
        else:
            packed[..., 0], packed[..., 1], packed[..., 2], packed[..., 3] = y[:, 0::2], u, y[:, 1::2], v
        pixels = packed
    elif encoding in BAYER_ORDERS:
        order = BAYER_ORDERS[encoding]
        channel = {"R": 0, "G": 1, "B": 2}
        pixels = np.empty((height, width), np.uint8)
        for index, letter in enumerate(order):
            dy, dx = divmod(index, 2)
            pixels[dy::2, dx::2] = rgb[dy::2, dx::2, channel[letter]]
    else:
        raise ValueError(encoding)
    rows = np.ascontiguousarray(pixels).view(np.uint8).reshape(height, -1)
    if padding:
        rows = np.concatenate([rows, np.full((height, padding), 0xAB, np.uint8)], axis=1)
    return Image(header=header or Header(), height=height, width=width, encoding=encoding,
                 is_bigendian=int(bigendian), step=rows.shape[1], data=rows.tobytes())


def gradient_rgb(height: int = 32, width: int = 48) -> np.ndarray:
    """A smooth RGB image (what JPEG keeps well)."""
    yy, xx = np.mgrid[0:height, 0:width]
    return np.stack([xx * 255 // width, yy * 255 // height, np.full_like(xx, 128)], axis=2).astype(np.uint8)


def expected_rgb(rgb: np.ndarray, encoding: str) -> np.ndarray:
    """What decoding encode(rgb, encoding) should give (grey encodings keep only one channel)."""
    if encoding in ("mono8", "mono16"):
        return np.repeat(rgb[..., :1], 3, axis=2)
    return rgb


def compress(rgb: np.ndarray, fmt: str = "jpeg", header: Header | None = None) -> CompressedImage:
    ok, data = cv2.imencode(".jpg" if fmt == "jpeg" else ".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return CompressedImage(header=header or Header(), format=fmt, data=data.tobytes())
