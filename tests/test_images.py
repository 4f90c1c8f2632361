"""imgclf.images: the one decoder shared by prepare and serving."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from imgclf.images import BACKGROUND, ImageDecodeError, decode, decoding_bytes, load_image
from support.decode_memory import CASES, measure
from support.decoding import fitted_from_full_decode
from support.images import image_bytes, random_rgb

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


def rotated_by_metadata(fmt: str) -> bytes:
    """A 40x20 landscape whose metadata says "turn me upright" (6) the way `fmt` stores it."""
    landscape = random_rgb(7, (40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    if fmt == "PNG eXIf":
        return image_bytes(landscape, "PNG", exif=exif.tobytes())
    if fmt == "PNG text":  # ImageMagick's hex "Raw profile type exif" chunk
        from PIL.PngImagePlugin import PngInfo

        raw = exif.tobytes()
        chunk = PngInfo()
        chunk.add_text("Raw profile type exif", f"\nexif\n{len(raw)}\n{raw.hex()}")
        return image_bytes(landscape, "PNG", pnginfo=chunk)
    if fmt == "XMP":
        xmp = b'<x:xmpmeta><rdf:Description tiff:Orientation="6"/></x:xmpmeta>'
        return image_bytes(landscape, "JPEG", xmp=xmp, quality=95)
    return image_bytes(landscape, "TIFF", exif=exif)


@pytest.mark.parametrize("fmt", ["PNG eXIf", "PNG text", "XMP", "TIFF"])
def test_orientation_is_read_wherever_pillow_finds_it(fmt):
    data = rotated_by_metadata(fmt)
    with Image.open(io.BytesIO(data)) as image:
        assert image.getexif().get(0x0112) == 6  # the file really says it, as Pillow reads it
    assert np.array_equal(pixels(data), fitted_from_full_decode(data, SIZE))


def photo_with_orientation(orientation: int, size: tuple[int, int]) -> bytes:
    """A smooth JPEG "photo" with a dark block in one corner, stored with this orientation."""
    width, height = size
    ramp = np.linspace(40, 220, width, dtype=np.float32)[None, :, None]
    pixels = np.broadcast_to(ramp, (height, width, 3)).copy()
    pixels[: height // 3, : width // 4] = (20, 30, 200)
    exif = Image.Exif()
    exif[0x0112] = orientation
    return image_bytes(Image.fromarray(pixels.astype(np.uint8)), "JPEG", exif=exif, quality=92)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_large_jpegs_decode_at_reduced_scale_with_the_full_decodes_geometry(orientation):
    data = photo_with_orientation(orientation, (1600, 960))  # 1/8 scale: 200x120, >= 2 x SIZE
    fast, full = pixels(data).astype(int), fitted_from_full_decode(data, SIZE).astype(int)
    difference = np.abs(fast - full)
    # Misplaced by a single row or column, the block's edge would differ by ~150 levels.
    assert difference.mean() < 1 and difference.max() <= 4


def test_jpegs_whose_sides_a_scale_does_not_divide_decode_in_full():
    data = photo_with_orientation(6, (1601, 961))
    assert np.array_equal(pixels(data), fitted_from_full_decode(data, SIZE))


@pytest.mark.parametrize(
    ("width", "height", "image_size", "scale"),
    [
        (4000, 3000, 64, 8),  # a phone photo: decoded at 500x375
        (4624, 3468, 64, 4),  # 3468 is not a multiple of 8
        (1600, 960, 224, 2),  # 1/4 would leave 400 px, less than twice 224
        (1601, 961, 32, 1),  # odd sides: no scale divides them
        (300, 300, 224, 1),  # already small
    ],
)
def test_jpeg_decoding_scale_divides_the_sides_and_leaves_twice_the_fit(
    width, height, image_size, scale
):
    from imgclf.images import _draft_scale

    assert _draft_scale(width, height, image_size) == scale


def test_wide_image_keeps_its_aspect_ratio_with_padding():
    panorama = Image.new("RGB", (400, 20), (0, 0, 0))
    out = pixels(image_bytes(panorama))
    assert (out[0] == 255).all() and (out[-1] == 255).all()  # padding above and below
    assert (out[SIZE // 2] == 0).all()  # the image spans the whole width


def test_one_pixel_image_fills_the_square():
    dot = Image.new("RGB", (1, 1), (10, 20, 30))
    assert (pixels(image_bytes(dot)) == (10, 20, 30)).all()


def test_a_heic_phone_photo_is_decoded_upright():
    portrait = Image.new("RGB", (30, 60), (0, 0, 255))
    portrait.paste((255, 0, 0), (0, 0, 30, 20))  # red on top when upright
    exif = Image.Exif()
    exif[0x0112] = 6  # stored on its side, as phones store portrait shots
    stored = portrait.transpose(Image.Transpose.ROTATE_90)
    data = image_bytes(stored, "HEIF", exif=exif.tobytes(), quality=95)
    assert data[4:12] == b"ftypheic"
    out = pixels(data).astype(int)
    assert tuple(out[SIZE // 2, 0]) == BACKGROUND  # portrait: padded left and right
    assert out[2, SIZE // 2, 0] > 200 and out[2, SIZE // 2, 2] < 60  # red at the top
    assert out[-3, SIZE // 2, 2] > 200 and out[-3, SIZE // 2, 0] < 60  # blue below


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
        (lambda: image_bytes(random_rgb(4, (64, 64)), "HEIF")[:2000], "cannot be decoded"),
    ],
    ids=["empty", "text", "html", "pdf", "truncated-png", "truncated-jpeg", "truncated-heic"],
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


def test_a_file_on_disk_meets_the_same_limits_as_an_upload(tmp_path):
    path = tmp_path / "huge.png"
    path.write_bytes(small_but_huge("RGB", 2000))
    with pytest.raises(ImageDecodeError, match=r"prepare\.max_pixels"):
        load_image(path, SIZE, max_pixels=1_000_000)
    with pytest.raises(ImageDecodeError, match="MiB to decode, above the limit"):
        load_image(path, SIZE, max_decoded_bytes=2**20)
    assert load_image(path, SIZE).shape == (SIZE, SIZE, 3)  # within the defaults


def small_but_huge(mode: str, side: int) -> bytes:
    """A PNG of a few kilobytes that declares a `side` x `side` image of `mode`."""
    return image_bytes(Image.new(mode, (side, side)))


@pytest.mark.parametrize("mode", ["I;16", "RGBA", "RGB"])
def test_an_image_that_would_take_too_much_memory_is_refused_before_decoding(mode):
    data = small_but_huge(mode, 2000)
    assert len(data) < 200_000  # a small upload
    with Image.open(io.BytesIO(data)) as opened:
        limit = decoding_bytes(opened) - 1  # the estimate (measured: bench_decode_memory)
    with pytest.raises(ImageDecodeError, match=r"2000x2000 .* MiB to decode, above the limit"):
        load_image(data, 32, max_decoded_bytes=limit)
    assert load_image(data, 32, max_decoded_bytes=limit + 1).shape == (32, 32, 3)


def test_16_bit_scaling_in_integers_is_the_rounded_float_scaling():
    values = np.arange(0, 65536, dtype=np.uint16).reshape(256, 256)
    expected = np.clip(np.rint(values * (255.0 / 65535.0)), 0, 255).astype(np.uint8)
    decoded = load_image(image_bytes(Image.fromarray(values)), 256)
    # Fitting a 256 px image into 256 px changes no pixel: the scaling is what shows.
    np.testing.assert_array_equal(decoded[..., 0], expected)


@pytest.mark.slow  # a fresh interpreter per format: about 20 s
@pytest.mark.parametrize("case", sorted(CASES))
def test_decoding_takes_no_more_memory_than_its_estimate(case):
    found = measure(CASES[case]())
    assert 0 < found["peak"] <= found["estimate"], found


def test_a_small_transparent_palette_png_that_decodes_huge_is_refused_from_its_header():
    # 7000 x 7000 in a few dozen kB: composited through RGBA it once took 800 MB
    # under a 256 MiB limit, estimated as a plain palette image.
    palette = Image.new("P", (7000, 7000), 0)
    palette.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    data = image_bytes(palette, transparency=0)
    assert len(data) < 100_000
    with pytest.raises(ImageDecodeError, match="MiB to decode, above the limit of 256 MiB"):
        load_image(data, SIZE, max_decoded_bytes=256 * 2**20)
