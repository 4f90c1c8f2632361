"""imgclf.images: the one decoder shared by prepare and serving."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from imgclf.images import BACKGROUND, ImageDecodeError, decode, load_image
from tests.conftest import image_bytes, random_rgb

SIZE = 32


def pixels(data: bytes, size: int = SIZE) -> np.ndarray:
    return decode(data, size).pixels


def test_output_is_square_uint8_rgb():
    out = pixels(image_bytes(random_rgb(1, (50, 20))))
    assert out.shape == (SIZE, SIZE, 3)
    assert out.dtype == np.uint8


def test_greyscale_becomes_three_equal_channels():
    grey = Image.fromarray(np.full((16, 16), 77, dtype=np.uint8), mode="L")
    out = pixels(image_bytes(grey))
    assert (out == 77).all()


@pytest.mark.parametrize("size", [(29, 13), (40, 40), (7, 50)])
def test_grey_images_decode_exactly_as_their_rgb_conversion(size):
    # Grey files are resized as grey (the fast path): same pixels, padding and digest
    # as the RGB file of the same picture, upscaled or downscaled, padded or not.
    grey = Image.fromarray(np.random.default_rng(3).integers(0, 256, size[::-1], np.uint8), "L")
    as_grey, as_rgb = image_bytes(grey), image_bytes(grey.convert("RGB"))
    for target in (16, SIZE, 64):
        assert np.array_equal(pixels(as_grey, target), pixels(as_rgb, target))
        assert np.array_equal(load_image(as_grey, target), pixels(as_rgb, target))
    assert decode(as_grey, SIZE).source_digest == decode(as_rgb, SIZE).source_digest


def test_transparent_pixels_are_composited_on_white():
    rgba = Image.new("RGBA", (16, 16), (255, 0, 0, 0))
    assert (pixels(image_bytes(rgba)) == BACKGROUND).all()


def test_half_transparent_rgba_is_blended_with_white():
    rgba = Image.new("RGBA", (16, 16), (0, 0, 0, 128))
    out = pixels(image_bytes(rgba))
    assert np.allclose(out, 127, atol=2)


def test_greyscale_with_alpha_is_composited():
    la = Image.new("LA", (16, 16), (0, 0))
    assert (pixels(image_bytes(la)) == 255).all()


def test_palette_with_transparency_is_composited():
    palette = Image.new("P", (16, 16), 0)
    palette.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    palette.paste(1, (0, 0, 16, 8))  # top half blue, bottom half index 0 (transparent)
    out = pixels(image_bytes(palette, transparency=0))
    assert tuple(out[2, SIZE // 2]) == (0, 0, 255)
    assert tuple(out[-2, SIZE // 2]) == BACKGROUND


def test_cmyk_jpeg_is_converted_to_rgb():
    cyan = Image.new("CMYK", (16, 16), (255, 0, 0, 0))
    out = pixels(image_bytes(cyan, "JPEG", quality=95)).astype(int)
    red, green, blue = out[SIZE // 2, SIZE // 2]
    assert red < 40 and green > 215 and blue > 215


def test_16_bit_png_is_scaled_not_clipped():
    values = np.array([[0, 32768], [65535, 1000]], dtype=np.uint16).repeat(8, 0).repeat(8, 1)
    sixteen = Image.fromarray(values)
    assert sixteen.mode.startswith("I")
    decoded = decode(image_bytes(sixteen), 16).pixels[..., 0]
    assert decoded[0, 0] == 0
    assert decoded[0, 15] == 128
    assert decoded[15, 0] == 255
    assert decoded[15, 15] == 4  # 1000 / 65535 * 255; clipping would give 255


def test_exif_orientation_is_applied():
    landscape = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, displayed rotated 90 degrees: portrait
    out = pixels(image_bytes(landscape, "JPEG", exif=exif.tobytes(), quality=95))
    # A portrait image is padded left and right, not top and bottom.
    assert tuple(out[SIZE // 2, 0]) == BACKGROUND
    assert out[0, SIZE // 2, 0] > 200 and out[0, SIZE // 2, 1] < 60


def test_wide_image_keeps_its_aspect_ratio_with_padding():
    panorama = Image.new("RGB", (400, 20), (0, 0, 0))
    out = pixels(image_bytes(panorama))
    assert (out[0] == 255).all() and (out[-1] == 255).all()  # padding above and below
    assert (out[SIZE // 2] == 0).all()  # the image spans the whole width


def test_one_pixel_image_fills_the_square():
    dot = Image.new("RGB", (1, 1), (10, 20, 30))
    assert (pixels(image_bytes(dot)) == (10, 20, 30)).all()


def test_animated_gif_uses_its_first_frame():
    frames = [Image.new("RGB", (16, 16), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    data = image_bytes(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    out = pixels(data).astype(int)
    assert out[8, 8, 0] > 200 and out[8, 8, 2] < 60


@pytest.mark.parametrize(
    ("make_bytes", "reason"),
    [
        (lambda: b"", "empty file"),
        (lambda: b"hello, this is text and not a picture\n" * 10, "not an image"),
        (lambda: b"<html><body>not an image</body></html>", "not an image"),
        (lambda: b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n%%EOF\n", "not an image"),
        (lambda: image_bytes(random_rgb(2, (64, 64)))[:-300], "cannot be decoded"),
        (lambda: image_bytes(random_rgb(3, (64, 64)), "JPEG")[:600], "cannot be decoded"),
    ],
    ids=["empty", "text", "html", "pdf", "truncated-png", "truncated-jpeg"],
)
def test_bad_files_raise_a_clear_error(make_bytes, reason):
    with pytest.raises(ImageDecodeError, match=reason):
        decode(make_bytes(), SIZE)


def test_decompression_bomb_is_refused_before_decoding():
    huge = image_bytes(Image.new("L", (3000, 3000)))  # a few kB declaring 9 megapixels
    assert len(huge) < 50_000
    with pytest.raises(ImageDecodeError, match=r"9,000,000 pixels.*prepare.max_pixels"):
        decode(huge, SIZE, max_pixels=1_000_000)


def test_float_images_are_refused_as_unsupported():
    floats = Image.fromarray(np.zeros((8, 8), dtype=np.float32), mode="F")
    with pytest.raises(ImageDecodeError, match="unsupported image mode F"):
        decode(image_bytes(floats, "TIFF"), SIZE)


def test_digest_depends_on_pixels_not_on_the_file_format():
    image = random_rgb(4)
    png, bmp = image_bytes(image, "PNG"), image_bytes(image, "BMP")
    assert decode(png, SIZE).source_digest == decode(bmp, SIZE).source_digest
    assert decode(png, SIZE).source_digest != decode(image_bytes(random_rgb(5)), SIZE).source_digest


def test_load_image_reads_paths_and_bytes_identically(tmp_path):
    data = image_bytes(random_rgb(6), "JPEG")
    path = tmp_path / "photo.jpg"
    path.write_bytes(data)
    assert np.array_equal(load_image(path, SIZE), load_image(data, SIZE))
