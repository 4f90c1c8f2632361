"""The documentation that is generated from the code is current."""

from __future__ import annotations

import subprocess
import sys

from support.project import ROOT


def test_parameters_page_is_generated_from_the_current_schema():
    result = subprocess.run(
        [sys.executable, "scripts/params_table.py", "--check"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    page = (ROOT / "docs" / "parameters.md").read_text()
    # Every key of params.yaml is on it, with its description from the schema.
    from imgclf.params import schema

    for group, field in schema().model_fields.items():
        assert f"## `{group}`" in page
        for key, info in field.annotation.model_fields.items():
            assert f"| `{key}` |" in page and info.description in page


def test_generated_tables_replace_only_what_is_between_their_markers(tmp_path):
    import pytest

    from support.markers import replace_between

    page = tmp_path / "page.md"
    page.write_text("# Title\n<!-- t:start -->\nold\n<!-- t:end -->\nafter\n")
    replace_between(page, "t", "| a |\n|---|\n")
    assert page.read_text() == "# Title\n<!-- t:start -->\n| a |\n|---|\n<!-- t:end -->\nafter\n"
    with pytest.raises(ValueError, match="no <!-- other:start -->"):
        replace_between(page, "other", "x")


def test_every_generated_table_in_the_docs_has_both_markers():
    import re

    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = page.read_text(encoding="utf-8")
        for name in set(re.findall(r"<!-- ([\w-]+):start -->", text)):
            assert text.count(f"<!-- {name}:end -->") == 1, f"{page.name}: {name}"
