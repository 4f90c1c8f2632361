"""Mutation testing of the modules where a silent mistake costs users most (`make mutate`).

    python scripts/mutate.py                 # every module of [tool.mutmut] only_mutate
    python scripts/mutate.py webapp/auth.py  # one module (results of the others are kept)
    python scripts/mutate.py --report        # the table of the last runs, nothing re-run

A run tests what is not yet decided and what survived the last one (new tests may kill
it); `rm -rf mutants` starts over.

mutmut copies the project into mutants/, changes one thing at a time in these modules (a
comparison, a constant, a returned value...) and runs the quick loop's tests of that
function against each change. A change no test notices ("survived") is a behaviour
nothing checks. Each module's line counts mutants killed (a test failed, or the change
made one hang: "timeout"), survived, and equivalent: survivors that cannot change what a
user gets (a cache size, a message's wording), each listed with its reason in
docs/development.md's table between the `mutation-equivalent` markers. The table of
results goes between its `mutation` markers, with the commit, date and CPU.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import tomllib

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from support.markers import markdown_table, replace_between, stamp

DOCS = Path("docs/development.md")
TARGET = 0.90
# Where a module holds more than the decision that matters, only these functions are
# mutated: the parity judge and refusal, and the export's lines that apply calibration,
# the "not sure" threshold and the unfamiliar threshold (the rest is the stage's story).
SCOPE = {
    "imgclf/deploy/parity.py": ["judge", "check_format", "check_explain", "_attempt",
                                "_refuse", "FormatReport.failed"],
    "stages/export.py": ["calibrate", "Served.temperature", "Served.answering",
                         "fit_unfamiliar"],
}  # fmt: skip
# mutmut's exit codes (mutmut.stats.status_by_exit_code in 3.8): a test failure kills a
# mutant, so does pytest's internal error; SIGXCPU and 36 are its CPU-time limit; 5 and 33
# mean no test reached the change, which is a survivor too; a test process that crashed
# (SIGSEGV, SIGABRT: a view past its buffer) noticed it, and SIGKILL ends a hung one.
STATUS = {1: "killed", 3: "killed", -24: "timeout", 36: "timeout", 0: "survived",
          5: "survived", 33: "survived",
          -11: "killed", -6: "killed", -9: "timeout"}  # fmt: skip


def modules() -> list[str]:
    return tomllib.loads(Path("pyproject.toml").read_text())["tool"]["mutmut"]["only_mutate"]


def equivalents() -> dict[str, str]:
    """Mutant name -> why it cannot change what a user gets, from docs/development.md."""
    text = DOCS.read_text(encoding="utf-8")
    table = text.split("<!-- mutation-equivalent:start -->", 1)[1].split("<!-- mutation-equiv")[0]
    rows = re.findall(r"^\| `([\w.]+)` \| (.+?) \|$", table, flags=re.MULTILINE)
    return dict(rows)


def function_of(mutant: str) -> str:
    """The function a mutant changes, as SCOPE names it: `x_judge__mutmut_3` is judge,
    `xǁFormatReportǁfailed__mutmut_1` is FormatReport.failed."""
    mangled = mutant.rsplit(".", 1)[1].split("__mutmut_")[0]
    return mangled.removeprefix("x_") if mangled.startswith("x_") else ".".join(
        mangled.split("ǁ")[1:]
    )  # fmt: skip


def patterns(module: str) -> list[str]:
    """mutmut's names of the mutants of `module` in scope."""
    dotted = module.removesuffix(".py").replace("/", ".")
    if module not in SCOPE:
        return [f"{dotted}.*"]
    mangled = [f"x_{f}" if "." not in f else "xǁ" + f.replace(".", "ǁ") for f in SCOPE[module]]
    return [f"{dotted}.{name}__mutmut_*" for name in mangled]


def results(module: str) -> dict[str, str]:
    """Each mutant of `module` in scope and what became of it ("not run" before its run)."""
    meta = Path("mutants") / f"{module}.meta"
    if not meta.is_file():
        return {}
    codes = json.loads(meta.read_text())["exit_code_by_key"]
    scope = SCOPE.get(module)
    return {
        name: STATUS.get(code, "not run" if code is None else "other")
        for name, code in codes.items()
        if scope is None or function_of(name) in scope
    }


def summary(module: str, explained: dict[str, str]) -> tuple[list[str], list[str]]:
    """One table row for `module`, and its survivors nobody has explained."""
    outcome = results(module)
    survivors = sorted(name for name, status in outcome.items() if status == "survived")
    equivalent = [name for name in survivors if name in explained]
    unexplained = [name for name in survivors if name not in explained]
    counts = Counter(outcome.values())
    killed = counts["killed"] + counts["timeout"]
    judged = len(outcome) - counts["not run"] - len(equivalent)
    share = f"{killed / judged:.0%}" if judged else "not run"
    row = [f"`{module}`", str(len(outcome)), str(killed), str(counts["timeout"]),
           str(len(unexplained)), str(len(equivalent)), str(counts["not run"] + counts["other"]),
           share]  # fmt: skip
    return row, unexplained


def to_run(module: str) -> list[str]:
    """What a run of `module` tests: every mutant in scope the first time; after that the
    functions with a mutant not yet decided or surviving (mutmut re-runs what it is named,
    and resets by itself the mutants of a function that changed)."""
    outcome = results(module)
    if not outcome or module in SCOPE:  # a few functions: all of them again
        return patterns(module)
    # By function: a function that changed numbers its mutants afresh.
    open_names = [name for name, status in outcome.items() if status in ("not run", "survived")]
    return sorted({name.split("__mutmut_")[0] + "__mutmut_*" for name in open_names})


def report(write_docs: bool) -> bool:
    explained = equivalents()
    header = ["module", "mutants", "killed", "of them by timeout", "survived", "equivalent",
              "not run", "killed of the rest"]  # fmt: skip
    rows, open_survivors = [], []
    for module in modules():
        row, unexplained = summary(module, explained)
        rows.append(row)
        open_survivors += unexplained
    table = markdown_table(header, rows)
    print(table)
    if open_survivors:
        print("\nSurvivors no test kills and docs/development.md does not explain "
              "(`mutmut show NAME` prints the change):")  # fmt: skip
        print("\n".join(f"  {name}" for name in open_survivors))
    if write_docs:
        note = f"{stamp('make mutate')}; target {TARGET:.0%} killed of the mutants not equivalent."
        replace_between(DOCS, "mutation", f"{note}\n\n{table}")
    return not open_survivors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="paths from [tool.mutmut] only_mutate")
    parser.add_argument("--report", action="store_true", help="print the last results only")
    parser.add_argument("--docs", action="store_true", help="write the table into the docs")
    args = parser.parse_args()
    unknown = sorted(set(args.modules) - set(modules()))
    if unknown:
        sys.exit(f"not in [tool.mutmut] only_mutate of pyproject.toml: {', '.join(unknown)}")
    if not args.report:
        chosen = [name for module in args.modules or modules() for name in to_run(module)]
        if chosen:
            subprocess.run([sys.executable, "-m", "mutmut", "run", *chosen], check=False)
    sys.exit(0 if report(args.docs) else 1)


if __name__ == "__main__":
    main()
