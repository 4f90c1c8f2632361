"""imgclf/bundle.py: the one owner of the export directory's layout."""

from __future__ import annotations

import re
import subprocess

import pytest

from imgclf import bundle
from imgclf.bundle import EXPLAIN, FORMATS, SERVED, Bundle
from imgclf.stage_files import StageFileError
from support.imports import heavy_modules_after
from support.project import ROOT

# Every member's name, as a path would spell it.
MEMBER_NAMES = re.compile(
    "|".join(
        re.escape(name)
        for name in (
            *(f.file for f in FORMATS.values() if f.name != "keras"),
            EXPLAIN.file,
            bundle.METADATA_FILE,
            bundle.CARD_FILE,
        )
    )
    + r"|[\"'/]saved_model\b"
)
# Where the project's code and configuration live (tests and docs may name the members).
CODE = ("imgclf", "webapp", "stages", "scripts", "bench", "support", "container", ".ci")
CODE_FILES = ("Makefile", "Dockerfile", "compose.yaml", "dvc.yaml", "pyproject.toml")


def tracked_code() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--", *CODE, *CODE_FILES], cwd=ROOT, capture_output=True,
        text=True, check=True,
    ).stdout.split()  # fmt: skip
    return [path for path in listed if path != "imgclf/bundle.py"]


def test_no_code_but_the_bundle_module_spells_a_member_of_the_export():
    spelled = []
    for path in tracked_code():
        try:
            text = (ROOT / path).read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError):
            continue  # pictures; a file deleted but not yet committed
        spelled += [
            f"{path}:{number}: {line.strip()}"
            for number, line in enumerate(text.splitlines(), start=1)
            if MEMBER_NAMES.search(line)
        ]
    assert spelled == []


def test_the_member_check_finds_a_spelled_name():
    for line in ('x = root / "model.onnx"', "see explain.onnx", 'root / "saved_model" / "1"'):
        assert MEMBER_NAMES.search(line), line
    for line in ("tf.saved_model.save(module)", "export_saved_model(model, path)"):
        assert not MEMBER_NAMES.search(line), line


def test_each_format_names_its_file_runtime_and_install_hint():
    files = [f.file for f in FORMATS.values()] + [EXPLAIN.file]
    assert len(set(files)) == len(files)
    assert set(SERVED) <= set(FORMATS) and all(FORMATS[name].runtime == name for name in SERVED)
    for fmt in (*FORMATS.values(), EXPLAIN):
        assert fmt.runtime in SERVED and fmt.package and fmt.install.startswith("pip install")
    assert bundle.CONVERTED == ("onnx", "tflite", "tflite_int8", "onnx_int8")


def test_a_bundle_places_every_member_under_its_root(tmp_path):
    export = Bundle(tmp_path / "best")
    assert export.root == tmp_path / "best"
    assert {export.file(name).parent for name in FORMATS} == {export.root}
    assert export.saved_model.relative_to(export.root) == bundle.SAVED_MODEL_DIR
    members = export.members()
    assert members[0] == export.metadata_file and export.explain in members
    assert {export.file(name) for name in SERVED} <= set(members)
    # The card describes an export and the int8 file is for devices: a server reads neither.
    assert export.card not in members
    assert export.file("tflite_int8") not in members and export.file("onnx_int8") not in members


def test_a_directory_without_metadata_is_no_export_and_bad_metadata_says_what_to_run(tmp_path):
    export = Bundle(tmp_path)
    assert not export.is_export() and not export.has("onnx")
    export.metadata_file.write_text("{not json")
    assert export.is_export()
    with pytest.raises(StageFileError, match="dvc repro export"):
        export.read_metadata()


def test_metadata_written_through_the_bundle_reads_back(tiny_project, tmp_path):
    served = Bundle(tiny_project / "models" / "best")
    copy = Bundle(tmp_path)
    copy.write_metadata(served.read_metadata())
    assert copy.read_metadata() == served.read_metadata()
    copy.write_card("# card\n")
    assert copy.card.read_text() == "# card\n"


def test_the_bundle_imports_neither_tensorflow_nor_a_runtime():
    assert heavy_modules_after("import imgclf.bundle") == []
