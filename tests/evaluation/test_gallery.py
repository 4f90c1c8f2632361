"""imgclf.evaluation.gallery: the mistakes gallery is one readable sheet, one tile per mistake."""

from __future__ import annotations

import numpy as np

from imgclf.evaluation import gallery
from imgclf.evaluation.gallery import COLUMNS, PADDING, THUMB, TITLE, draw_gallery


def has_colour(region: np.ndarray, colour: tuple[int, int, int]) -> bool:
    return bool((region.reshape(-1, 3) == colour).all(axis=1).any())


def is_blank(region: np.ndarray) -> bool:
    return bool((region.reshape(-1, 3) == gallery.BACKGROUND).all())


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
    drawn = np.asarray(sheet)
    # The first picture is pasted as it is, scaled up: its mean colour is kept.
    picture = drawn[TITLE : TITLE + THUMB, PADDING : PADDING + THUMB].astype(float)
    assert abs(picture.mean() - pixels[0].mean()) < 10
    # Beside it, its heatmap over it: a picture too, and not the same one.
    beside = drawn[TITLE : TITLE + THUMB, 2 * PADDING + THUMB : 2 * (PADDING + THUMB)]
    assert not is_blank(beside) and np.abs(beside - picture).mean() > 5
    # Under them, the caption; the wrong prediction in red, one line per tile.
    caption = drawn[TITLE + THUMB : TITLE + THUMB + 54, PADDING : PADDING + 2 * THUMB]
    assert not is_blank(caption[:16]) and has_colour(caption[32:], gallery.WRONG)
    assert not has_colour(caption[:32], gallery.WRONG)


def test_no_mistakes_still_draws_a_sheet_that_says_so():
    sheet = draw_gallery([], np.zeros((0, 32, 32, 3), np.uint8), np.zeros((0, 4, 4)), "None")
    drawn = np.asarray(sheet)
    assert sheet.width >= 2 * THUMB and sheet.height >= TITLE + THUMB  # one empty tile's room
    assert not is_blank(drawn[:TITLE])  # the title
    assert not is_blank(drawn[TITLE : TITLE + 24])  # the line saying there are no mistakes
    assert is_blank(drawn[TITLE + 24 :])  # and nothing else
