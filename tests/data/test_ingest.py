"""imgclf.data.ingest: the automatic image size, read from file headers."""

from __future__ import annotations

import pytest
from PIL import Image

from imgclf.data.ingest import auto_image_size, longer_sides


@pytest.mark.parametrize(
    ("sides", "expected"),
    [
        ([28] * 9, 32),  # Fashion-MNIST: native size, lifted to ResNet50's minimum only
        ([40, 41, 45], 48),  # rounded up to a multiple of 16
        ([3000, 4000, 224, 500, 640], 128),  # large photos are capped at what families use
        ([90, 100, 110], 112),
        ([20, 20, 3000], 32),  # the median, not the mean: one huge file does not count
        ([], 32),
    ],
)
def test_auto_image_size(sides, expected):
    assert auto_image_size(sides) == expected


def test_longer_sides_reads_headers_and_skips_what_is_not_an_image(tmp_path):
    Image.new("RGB", (120, 30)).save(tmp_path / "wide.png")
    Image.new("L", (20, 70)).save(tmp_path / "tall.jpg")
    (tmp_path / "notes.jpg").write_bytes(b"not an image")
    (tmp_path / "empty.png").write_bytes(b"")
    paths = [tmp_path / n for n in ("wide.png", "notes.jpg", "tall.jpg", "empty.png")]
    assert longer_sides(paths) == [120, 70]
