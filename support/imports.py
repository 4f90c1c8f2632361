"""Which project files a script imports, followed through the package (read, not run)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from support.project import ROOT

PACKAGES = ("imgclf",)


def _module_file(module: str) -> Path | None:
    """The file of a project module (a package's __init__.py), or None if it is not one."""
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(path: Path) -> set[str]:
    """Project modules `path` imports anywhere (module level or inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from package import name` imports the package, and `name` if it is a module.
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        for name in names:
            if name.split(".")[0] in PACKAGES:
                parts = name.split(".")
                # Importing a.b.c runs a/__init__.py and a/b/__init__.py first.
                found.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return found


def project_imports(script: Path) -> set[Path]:
    """Every project file that running `script` imports, directly or through other modules."""
    seen: set[Path] = set()
    pending = [Path(script)]
    while pending:
        path = pending.pop()
        for module in imported_modules(path):
            file = _module_file(module)
            if file is not None and file not in seen:
                seen.add(file)
                pending.append(file)
    return {path.relative_to(ROOT) for path in seen}


def heavy_modules_after(statements: str) -> list[str]:
    """Which of Keras, TensorFlow and onnxruntime a fresh interpreter has imported after
    running `statements` (run, not read: lazy imports count only when they happen)."""
    code = (
        f"import sys; {statements}; "
        "print(sorted(m for m in ('keras', 'tensorflow', 'onnxruntime') if m in sys.modules))"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    return ast.literal_eval(found.strip().splitlines()[-1])
