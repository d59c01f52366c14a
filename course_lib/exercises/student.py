"""The student version of the notebooks: solutions replaced by a stub, outputs cleared."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

BEGIN, END = "# BEGIN SOLUTION", "# END SOLUTION"


def strip_solutions(source: str, exercise_hint: str = "write your solution here") -> str:
    """Replace each ``# BEGIN SOLUTION`` ... ``# END SOLUTION`` block of a cell's source with a
    ``raise NotImplementedError`` at the block's indentation. Raises ValueError on an
    unbalanced block."""
    lines = source.split("\n")
    out: list[str] = []
    inside = False
    for line in lines:
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise ValueError("nested '# BEGIN SOLUTION' without '# END SOLUTION'")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}# TODO: {exercise_hint}")
            out.append(f"{indent}raise NotImplementedError(\"exercise: {exercise_hint}\")")
        elif stripped == END:
            if not inside:
                raise ValueError("'# END SOLUTION' without '# BEGIN SOLUTION'")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError("'# BEGIN SOLUTION' without a matching '# END SOLUTION'")
    return "\n".join(out)


def student_notebook(notebook: dict) -> dict:
    """A copy of a notebook (nbformat JSON as a dict) with solutions stripped and outputs cleared."""
    nb = json.loads(json.dumps(notebook))
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        cell["source"] = strip_solutions(source)
        cell["outputs"] = []
        cell["execution_count"] = None
    return nb


def build_student_notebooks(source_dir: Path | str, out_dir: Path | str) -> list[Path]:
    """Write the student version of every ``*.ipynb`` in ``source_dir`` to ``out_dir``."""
    source_dir, out_dir = Path(source_dir), Path(out_dir)
    if not source_dir.is_dir():
        raise ValueError(f"source_dir must be a folder of notebooks, got {source_dir}")
    if source_dir.resolve() == out_dir.resolve():
        raise ValueError("out_dir must differ from source_dir, or the solutions would be overwritten")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(source_dir.glob("*.ipynb")):
        nb = student_notebook(json.loads(path.read_text()))
        target = out_dir / path.name
        target.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
        written.append(target)
    return written


def count_solution_blocks(source: str) -> int:
    return len(re.findall(rf"^\s*{re.escape(BEGIN)}\s*$", source, flags=re.M))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.exercises",
                                     description="Build the student version of the notebooks.")
    sub = parser.add_subparsers(dest="command", required=True)
    student = sub.add_parser("student", help="strip solutions and outputs from every notebook")
    student.add_argument("source", nargs="?", default="notebooks")
    student.add_argument("--out", default="student")
    args = parser.parse_args(argv)
    for path in build_student_notebooks(args.source, args.out):
        print(f"wrote {path}")
    return 0
