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
