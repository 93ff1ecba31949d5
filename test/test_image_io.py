"""kdc_ros.node.image_io: every supported encoding decodes to the known RGB array; bad input is refused
with an ImageError that names the problem."""
import numpy as np
import pytest

from image_samples import BAYER_ORDERS, compress, encode, expected_rgb, gradient_rgb, sample_rgb
from kdc_ros.node.image_io import ImageError, compressed_to_rgb, image_to_rgb, rgb_to_image

EXACT = ["rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16"]
YUV = ["yuv422", "uyvy", "yuyv", "yuv422_yuy2"]


@pytest.mark.parametrize("encoding", EXACT)
@pytest.mark.parametrize("padding", [0, 5])
def test_exact_encodings_round_trip(encoding, padding):
    rgb = sample_rgb()
    decoded = image_to_rgb(encode(rgb, encoding, padding=padding))
    assert decoded.dtype == np.uint8 and decoded.flags.writeable and decoded.flags.c_contiguous
    np.testing.assert_array_equal(decoded, expected_rgb(rgb, encoding))


def test_big_endian_mono16():
    rgb = sample_rgb()
    np.testing.assert_array_equal(image_to_rgb(encode(rgb, "mono16", bigendian=True)), expected_rgb(rgb, "mono16"))


@pytest.mark.parametrize("encoding", YUV)
def test_yuv422_round_trip(encoding):
    rgb = sample_rgb()  # horizontal pixel pairs share a colour, so 4:2:2 loses only rounding
    decoded = image_to_rgb(encode(rgb, encoding))
    assert np.abs(decoded.astype(int) - rgb).max() <= 3


@pytest.mark.parametrize("encoding", sorted(BAYER_ORDERS))
def test_bayer_demosaics_to_the_right_colour(encoding):
    rgb = np.empty((16, 16, 3), np.uint8)
    rgb[:] = (200, 120, 40)
    decoded = image_to_rgb(encode(rgb, encoding))
    np.testing.assert_allclose(decoded[4:-4, 4:-4].reshape(-1, 3).mean(0), (200, 120, 40), atol=2)


@pytest.mark.parametrize("fmt, tolerance", [("png", 0), ("jpeg", 12)])
def test_compressed_round_trip(fmt, tolerance):
    rgb = gradient_rgb(32, 48)
    decoded = compressed_to_rgb(compress(rgb, fmt))
    assert decoded.shape == rgb.shape
    assert np.abs(decoded.astype(int) - rgb).max() <= tolerance


def test_rgb_to_image_round_trip():
    rgb = sample_rgb()
    np.testing.assert_array_equal(image_to_rgb(rgb_to_image(rgb, encode(rgb, "rgb8").header)), rgb)


def _bad_raw_images():
    good = encode(sample_rgb(), "rgb8")
    unknown = encode(sample_rgb(), "rgb8")
    unknown.encoding = "32FC1"
    short = encode(sample_rgb(), "rgb8")
    short.data = bytes(short.data)[:-7]
    narrow = encode(sample_rgb(), "rgb8")
    narrow.step = narrow.width * 2
    narrow.data = bytes(narrow.data)[:narrow.step * narrow.height]
    empty = encode(sample_rgb(), "rgb8")
    empty.height, empty.data = 0, b""
    odd = encode(sample_rgb(8, 6), "yuyv")
    odd.width = 5
    return {
        "unknown encoding": unknown, "data has": short, "step": narrow, "empty": empty,
        "even width": odd, "too large": (good, 100),
    }


@pytest.mark.parametrize("reason, image", list(_bad_raw_images().items()))
def test_bad_raw_images_are_refused_with_a_reason(reason, image):
    image, max_pixels = image if isinstance(image, tuple) else (image, 1 << 24)
    with pytest.raises(ImageError, match=reason):
        image_to_rgb(image, max_pixels)


def test_bad_compressed_images_are_refused_with_a_reason():
    jpeg, png = compress(sample_rgb(32, 48), "jpeg"), compress(sample_rgb(32, 48), "png")
    cases = {
        "empty": b"",
        "truncated JPEG": bytes(jpeg.data)[:len(jpeg.data) // 2],
        "cannot decode": bytes(png.data)[:len(png.data) // 2],
        "cannot decode ": b"this is not an image at all",
    }
    for reason, data in cases.items():
        jpeg.data = data
        with pytest.raises(ImageError, match=reason.strip()):
            compressed_to_rgb(jpeg)


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_giant_compressed_image_is_refused_from_its_header(fmt, monkeypatch):
    import cv2
    message = compress(sample_rgb(32, 48), fmt)
    # The size check must come before decoding: fail the test if OpenCV is asked to decode.
    monkeypatch.setattr(cv2, "imdecode", lambda *a: pytest.fail("decoded a giant image"))
    with pytest.raises(ImageError, match="too large: 48x32"):
        compressed_to_rgb(message, max_pixels=1000)
