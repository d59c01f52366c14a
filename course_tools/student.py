"""The student version of the notebooks: solutions replaced by a stub, outputs cleared.

A ``# BEGIN SOLUTION`` ... ``# END SOLUTION`` block inside a function (or method) becomes
``raise NotImplementedError`` at the block's indentation, so an exercise decorated with
``falls_back_to`` uses the course's reference until the learner writes it. A block outside any
function (at the top level of a cell, typically solution-only asserts in a check cell) is
removed, leaving a comment (and ``pass`` where the enclosing block would be empty). A
``# BEGIN HIDDEN TESTS: name`` ... ``# END HIDDEN TESTS`` block (the instructor's cases for the
grader, :mod:`course_lib.exercises.grading`) is removed too. Both pairs are nbgrader's delimiters.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from course_lib.exercises.grading import HIDDEN_BEGIN, HIDDEN_END

__all__ = ["REMOVED", "HIDDEN_REMOVED", "strip_solutions", "strip_hidden_tests", "student_notebook",
           "build_student_notebooks", "count_solution_blocks", "main"]

BEGIN, END = "# BEGIN SOLUTION", "# END SOLUTION"
REMOVED = "# (solution removed in the student version)"
HIDDEN_REMOVED = "# (hidden tests removed in the student version: the grader runs them)"


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _inside_function(previous: list[str], indent: str) -> bool:
    """Whether a line at ``indent`` following ``previous`` lines sits in a ``def`` body: walk up
    the enclosing lines (each less indented than the last) looking for a ``def``."""
    width = len(indent)
    for line in reversed(previous):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if len(_indent(line)) < width:
            width = len(_indent(line))
            if re.match(r"(async\s+)?def\s", line.lstrip()):
                return True
            if width == 0:
                return False
    return False


def _replace_blocks(source: str, begin: str, end: str, replacement, exact: bool = True) -> str:
    """Each block of lines from the marker ``begin`` to the marker ``end`` (both included) replaced
    by ``replacement(begin_line, lines_before)``, a list of lines. A marker is a line that is the
    marker (``exact``), or a comment that contains it after its ``#`` (nbgrader's rule, which lets
    ``# BEGIN HIDDEN TESTS: name`` name its exercise). Raises ValueError on an unbalanced or nested
    block."""
    def marks(line: str, marker: str) -> bool:
        stripped = line.strip()
        return stripped == marker if exact else stripped.startswith("#") and marker[2:] in stripped

    out: list[str] = []
    inside = False
    for line in source.split("\n"):
        if marks(line, begin):
            if inside:
                raise ValueError(f"nested '{begin}' without '{end}'")
            inside = True
            out += replacement(line, out)
        elif marks(line, end):
            if not inside:
                raise ValueError(f"'{end}' without '{begin}'")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"'{begin}' without a matching '{end}'")
    return "\n".join(out)


def strip_solutions(source: str, exercise_hint: str = "write your solution here") -> str:
    """Replace each ``# BEGIN SOLUTION`` ... ``# END SOLUTION`` block of a cell's source: inside
    a function, by a ``raise NotImplementedError`` at the block's indentation; outside any
    function, by the comment ``# (solution removed in the student version)``. Raises ValueError
    on an unbalanced block."""
    def stub(line: str, before: list[str]) -> list[str]:
        indent = _indent(line)
        if _inside_function(before, indent):
            return [f"{indent}# TODO: {exercise_hint}",
                    f"{indent}raise NotImplementedError(\"exercise: {exercise_hint}\")"]
        return [f"{indent}{REMOVED}"] + ([f"{indent}pass"] if indent else [])   # keep an `if` body valid

    return _replace_blocks(source, BEGIN, END, stub)


def strip_hidden_tests(source: str) -> str:
    """Remove each ``# BEGIN HIDDEN TESTS: name`` ... ``# END HIDDEN TESTS`` block (nbgrader's
    delimiters), leaving a comment: the grader (:mod:`course_lib.exercises.grading`) reads them
    from the instructor's notebook. Raises ValueError on an unbalanced block."""
    return _replace_blocks(source, HIDDEN_BEGIN, HIDDEN_END, lambda line, _: [f"{_indent(line)}{HIDDEN_REMOVED}"],
                           exact=False)


ANSWER = "<summary><b>Answer</b></summary>"
ANSWER_BLOCK = re.compile(r"<details>\s*" + re.escape(ANSWER) + r".*?</details>\s*", re.DOTALL)


def student_notebook(notebook: dict, without_answers: bool = False) -> dict:
    """A copy of a notebook (nbformat JSON as a dict) with solutions and hidden tests stripped and
    outputs cleared; with ``without_answers``, the reflection questions' answers (each collapsed
    ``Answer`` block, and a markdown cell left empty without it) removed too, for a graded hand-out."""
    nb = json.loads(json.dumps(notebook))
    if without_answers:
        for cell in nb["cells"]:
            if cell["cell_type"] == "markdown" and ANSWER in "".join(cell["source"]):
                cell["source"] = ANSWER_BLOCK.sub("", "".join(cell["source"])).strip("\n")
        nb["cells"] = [c for c in nb["cells"] if c["cell_type"] != "markdown" or "".join(c["source"]).strip()]
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        cell["source"] = strip_solutions(strip_hidden_tests(source))
        cell["outputs"] = []
        cell["execution_count"] = None
    return nb


def build_student_notebooks(source_dir: Path | str, out_dir: Path | str, without_answers: bool = False) -> list[Path]:
    """Write the student version of every ``*.ipynb`` in ``source_dir`` to ``out_dir`` (answers to the
    reflection questions left out with ``without_answers``)."""
    source_dir, out_dir = Path(source_dir), Path(out_dir)
    if not source_dir.is_dir():
        raise ValueError(f"source_dir must be a folder of notebooks, got {source_dir}")
    if source_dir.resolve() == out_dir.resolve():
        raise ValueError("out_dir must differ from source_dir, or the solutions would be overwritten")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(source_dir.glob("*.ipynb")):
        nb = student_notebook(json.loads(path.read_text()), without_answers)
        target = out_dir / path.name
        target.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
        written.append(target)
    return written


def count_solution_blocks(source: str) -> int:
    return len(re.findall(rf"^\s*{re.escape(BEGIN)}\s*$", source, flags=re.M))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m course_tools.student",
                                     description="Build the student version of the notebooks: solutions and "
                                                 "outputs stripped from every notebook.")
    parser.add_argument("source", nargs="?", default="notebooks", help="folder of the course's notebooks")
    parser.add_argument("--out", default="student", help="folder to write the student notebooks to")
    parser.add_argument("--without-answers", action="store_true",
                        help="leave out the reflection questions' answers (for graded questions)")
    args = parser.parse_args(argv)
    for path in build_student_notebooks(args.source, args.out, args.without_answers):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
