"""The student version of every notebook works with no exercise solved.

Solutions are stripped (``python3 -m course_tools.student``): inside an exercise function a
solution becomes ``raise NotImplementedError``, so the exercise falls back to the course's
reference with a note and its checker reports "not attempted"; a solution block at the top level
of a cell (solution-only asserts in a check cell) is removed.

Every notebook is shown to work that way in three steps, cheap enough to run on every suite:

1. the student version differs from the notebook only where a solution block was, with outputs
   cleared, and every removed top-level block held assertions only (nothing the later cells use);
2. each exercise, defined from the student cell, falls back to the reference and its checker says
   "not attempted"; defined from the notebook's cell, it passes its checker;
3. so every other cell runs exactly the code that nbval runs in the notebook itself, on the same
   values (a correct solution and the reference agree on the checkers' cases).

A run of the student version from top to bottom proves it directly. The quickest notebook runs so
on every suite; every notebook does with ``--all-student-notebooks`` (the notebooks' time a second
time, about a quarter of an hour).
"""

import ast
import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from course_lib.exercises import checking
from course_tools.student import (BEGIN, END, _inside_function, build_student_notebooks, strip_hidden_tests,
                                  strip_solutions)

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
NAMES = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
ALWAYS_RUN = ("00_efficiency_and_hardware.ipynb",)


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("student")
    build_student_notebooks(NOTEBOOKS, out)
    return out


def code_cells(notebook: dict) -> list[str]:
    return ["".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            for c in notebook["cells"] if c["cell_type"] == "code"]


def top_level_solution_blocks(source: str) -> list[str]:
    """The solution blocks of a cell that sit outside any function (the student version removes
    them), dedented."""
    blocks, inside, before = [], None, []
    for line in source.split("\n"):
        if line.strip() == BEGIN:
            indent = len(line) - len(line.lstrip())
            inside = None if _inside_function(before, line[:indent]) else (indent, [])
            before.append(line)
        elif line.strip() == END:
            if inside is not None:
                blocks.append("\n".join(text[inside[0]:] for text in inside[1]))
            inside = None
        else:
            if inside is not None:
                inside[1].append(line)
            before.append(line)
    return blocks


def exercise_definitions(source: str) -> tuple[str, list[str]]:
    """From an exercise cell: the source of its imports, function and class definitions (the
    exercise and its helpers) and ``exercises.check_*`` assignments (nothing else of the cell),
    and the checked names."""
    tree = ast.parse(source)
    kept, checks = [], []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            kept.append(node)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):       # the exercise and its helpers
            kept.append(node)
        elif (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
              and ast.unparse(node.value.func).startswith("exercises.check_")):
            kept.append(node)
            checks.append(node.targets[0].id)
    return "\n\n".join(ast.unparse(n) for n in kept), checks


def imports_of(cells: list[str]) -> str:
    """Every top-level import statement of the notebook, in order."""
    lines = []
    for source in cells:
        for node in ast.parse(source).body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                lines.append(ast.unparse(node))
    return "\n".join(lines)


def run_exercises(cells: list[str], exercise_cells: list[int]) -> dict[str, checking.CheckResult]:
    namespace: dict = {}
    exec(imports_of(cells), namespace)                                  # noqa: S102 - our own notebooks
    results = {}
    for index in exercise_cells:
        source, checks = exercise_definitions(cells[index])
        exec(source, namespace)                                         # noqa: S102
        results.update({name: namespace[name] for name in checks})
    return results


@pytest.mark.parametrize("name", NAMES)
def test_student_version_differs_only_by_its_solutions(student_dir, name):
    source = json.loads((NOTEBOOKS / name).read_text())
    student = json.loads((student_dir / name).read_text())
    assert "BEGIN SOLUTION" not in (student_dir / name).read_text()
    assert "BEGIN HIDDEN TESTS" not in (student_dir / name).read_text()
    assert all(not c.get("outputs") for c in student["cells"] if c["cell_type"] == "code")
    assert [c["cell_type"] for c in student["cells"]] == [c["cell_type"] for c in source["cells"]]
    for original, stripped in zip(code_cells(source), code_cells(student)):
        assert stripped == strip_solutions(strip_hidden_tests(original))
        for body in top_level_solution_blocks(original):
            # Removed in the student version: it may only assert, defining nothing later cells use.
            assert all(isinstance(node, ast.Assert) for node in ast.parse(body).body), \
                f"{name}: a top-level solution block does more than assert:\n{body}"


@pytest.mark.parametrize("name", NAMES)
def test_each_skipped_exercise_falls_back_and_each_solution_passes(student_dir, name):
    solution_cells = code_cells(json.loads((NOTEBOOKS / name).read_text()))
    student_cells = code_cells(json.loads((student_dir / name).read_text()))
    exercise_cells = [i for i, s in enumerate(solution_cells) if "@exercises.falls_back_to" in s]
    if not exercise_cells:
        pytest.skip(f"{name} has no exercise")
    solved = run_exercises(solution_cells, exercise_cells)
    skipped = run_exercises(student_cells, exercise_cells)
    assert solved and solved.keys() == skipped.keys()
    for check, result in solved.items():
        assert result.status == checking.PASS, f"{name}: the solution of {check} fails: {result.message}"
    for check, result in skipped.items():
        assert result.status == checking.NOT_ATTEMPTED, f"{name}: skipped {check} gives {result.status}"


@pytest.mark.parametrize("name", NAMES)
def test_student_notebook_runs_top_to_bottom(student_dir, name, request):
    if name not in ALWAYS_RUN and not request.config.getoption("--all-student-notebooks"):
        pytest.skip("run with --all-student-notebooks (the steps above show it works without running it)")
    source = json.loads((NOTEBOOKS / name).read_text())
    nb = nbformat.read(student_dir / name, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()   # raises on any error
    text = "\n".join(str(o.get("text", "")) + json.dumps(o.get("data", {}))
                     for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    exercises = sum("@exercises.falls_back_to" in "".join(c["source"]) for c in source["cells"])
    if exercises:
        assert text.count("not attempted") >= exercises, "every skipped exercise reports 'not attempted'"
    assert "all checks passed" in text


def test_the_checks_see_what_would_break_a_student_version():
    cell = ("@exercises.falls_back_to(exercises.f_reference)\ndef f(x):\n    # BEGIN SOLUTION\n    return x\n"
            "    # END SOLUTION\n\nf_check = exercises.check_f(f)\nprint(f(2))\n\n"
            "# BEGIN SOLUTION\nlimit = 3        # later cells would miss it\nassert f(2) < limit\n# END SOLUTION\n")
    assert top_level_solution_blocks(cell) == ["limit = 3        # later cells would miss it\nassert f(2) < limit"]
    source, checks = exercise_definitions(cell)
    assert checks == ["f_check"] and "print" not in source and "def f(x)" in source
