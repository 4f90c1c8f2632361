"""imgclf.atomic_io: tables a user opens in a spreadsheet, written whole and safely."""

from __future__ import annotations

import csv
import os

import pytest

from imgclf.atomic_io import csv_table, spreadsheet_safe
from imgclf.serving import batch_predict


@pytest.mark.parametrize("cell", ["=SUM(1,2)", "+1", "-2+3", "@cmd", "\tx", "\rx"])
def test_a_cell_that_starts_a_formula_is_shown_as_text(cell):
    assert spreadsheet_safe(cell) == "'" + cell
    assert spreadsheet_safe("photo=1.png") == "photo=1.png" and spreadsheet_safe(-0.5) == -0.5


def test_the_prediction_table_neutralises_names_and_keeps_numbers(tmp_path):
    weird = os.fsdecode(b"caf\xe9.png")  # Latin-1 bytes: not UTF-8, as Linux allows
    answers = [
        {"file": "=SUM(1,2).png", "prediction": "-1", "confidence": 0.25, "uncertain": True,
         "probabilities": {"-1": 0.25}},
        {"file": weird, "error": "@not an image"},
    ]  # fmt: skip
    table = tmp_path / "out.csv"
    assert batch_predict.write_csv(answers, table) == 1
    raw = table.read_bytes()
    assert b"caf\xe9.png" in raw  # the name's own bytes, not a crash halfway
    rows = list(csv.DictReader(raw.decode("utf-8", "surrogateescape").splitlines()))
    assert rows[0]["file"] == "'=SUM(1,2).png" and rows[0]["prediction"] == "'-1"
    assert rows[0]["confidence"] == "0.2500" and rows[1]["error"] == "'@not an image"


def test_a_table_is_written_whole_or_not_at_all(tmp_path):
    table = tmp_path / "findings.csv"
    table.write_text("the previous table\n")

    def rows():
        yield {"file": "a.png"}
        raise RuntimeError("killed halfway")

    with pytest.raises(RuntimeError), csv_table(table, ["file"]) as writer:
        for row in rows():
            writer.writerow(row)
    assert table.read_text() == "the previous table\n"
    assert [p.name for p in tmp_path.iterdir()] == ["findings.csv"]
    with csv_table(table, ["file", "score"]) as writer:
        writer.writerow({"file": "a.png", "score": -0.123456})
    assert table.read_text() == "file,score\na.png,-0.1235\n"
