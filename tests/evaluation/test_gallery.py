"""imgclf.evaluation.gallery: the mistakes gallery is one readable sheet, one tile per mistake."""

from __future__ import annotations

import numpy as np

from imgclf.evaluation.gallery import COLUMNS, THUMB, draw_gallery


def mistake(number: int) -> dict:
    return {"row": number, "file": f"test/cat/{number:03d}.png", "actual": "cat",
            "predicted": "dog", "confidence": 0.9}  # fmt: skip


def test_one_tile_per_mistake_in_rows_of_columns():
    count = COLUMNS + 1
    pixels = np.random.default_rng(0).integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)
    heatmaps = np.random.default_rng(1).random((count, 4, 4)).astype(np.float32)
    sheet = draw_gallery([mistake(i) for i in range(count)], pixels, heatmaps, "Mistakes")
    one_row = draw_gallery([mistake(0)], pixels[:1], heatmaps[:1], "Mistakes")
    assert sheet.width >= COLUMNS * 2 * THUMB
    assert sheet.height > one_row.height  # a second row for the fifth mistake
    # The first picture is pasted as it is, scaled up: its mean colour is kept.
    tile = np.asarray(sheet)[30 : 30 + THUMB, 8 : 8 + THUMB].astype(float)
    assert abs(tile.mean() - pixels[0].mean()) < 10


def test_no_mistakes_still_draws_a_sheet():
    sheet = draw_gallery([], np.zeros((0, 32, 32, 3), np.uint8), np.zeros((0, 4, 4)), "None")
    assert sheet.width > 0 and sheet.height > 0
