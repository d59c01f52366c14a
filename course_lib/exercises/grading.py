"""Grading submitted notebooks: every exercise run through its checker and the instructor's hidden
cases, each submission in a process of its own, one CSV row per submission and exercise.

``python3 -m course_lib.exercises grade SUBMISSION... --out grades.csv`` takes notebooks or folders
of them. For each submission it finds the course's notebook of the same name (the *source*, by
default the ``notebooks/`` folder beside the library; ``--source FOLDER`` for an instructor's own
copy), and:

1. reads from the **submission** what the learner wrote: its function and class definitions (the
   exercises and any helpers), the simple constants of its exercise cells (``EPS = 1e-8``) and the
   imports they use; nothing else of the notebook runs, so grading takes seconds, not the
   notebook's minutes, and no cell of data loading or training can fail it;
2. reads from the **source** what is asked: the checker calls of its exercise cells
   (``exercises.check_magnitude_prune(magnitude_prune)``) and its hidden cases, blocks between
   ``# BEGIN HIDDEN TESTS: <exercise>`` and ``# END HIDDEN TESTS`` (the student version has them
   removed, as nbgrader removes its ``BEGIN HIDDEN TESTS`` blocks), so a learner can neither see nor
   edit them;
3. runs them in a new Python process, in an empty temporary folder, under a time limit. A checker
   that passes is followed by the exercise's hidden cases (``assert`` statements on the learner's
   function; the first that fails names the case).

Each row: ``submission, notebook, exercise, status, cases, message``, where status is
``passed``, ``failed`` (the message names the mistake, as the checker does in the notebook),
``not attempted`` (the function still raises ``NotImplementedError``) or ``did not run`` (the
learner's cell has a syntax error or raises when defined, the function is missing, or the process
ran past its time limit or died). Submissions never share a process, so nothing one does can
change another's grade. The grader is not a sandbox: a submission runs with the grader's rights,
so run untrusted work in a container or a throw-away account.

Solution markers. The notebooks mark solutions with ``# BEGIN SOLUTION`` / ``# END SOLUTION`` and
hidden cases with ``# BEGIN HIDDEN TESTS: name`` / ``# END HIDDEN TESTS``: nbgrader's own
delimiters ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", matched anywhere in a comment line), so an
instructor who uses nbgrader can take the notebooks as its source versions.
"""

from __future__ import annotations

import ast
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["GRADE_STATUSES", "HIDDEN_BEGIN", "HIDDEN_END", "Grade", "Assignment", "read_assignment",
           "read_submission", "grade_submission", "grade", "write_csv", "main"]

GRADE_STATUSES = ("passed", "failed", "not attempted", "did not run")
HIDDEN_BEGIN, HIDDEN_END = "# BEGIN HIDDEN TESTS", "# END HIDDEN TESTS"
TIME_LIMIT_S = 120.0
COLUMNS = ("submission", "notebook", "exercise", "status", "cases", "message")
_RESULT = "course-grade-result:"
DEFAULT_SOURCE = Path(__file__).resolve().parents[2] / "notebooks"


@dataclass(frozen=True)
class Grade:
    """One row of the gradebook."""
    submission: str
    notebook: str
    exercise: str
    status: str
    cases: int
    message: str


@dataclass(frozen=True)
class Assignment:
    """What a source notebook asks: for each exercise (the name of the learner's function or class
    that its checker takes first), the checker call's source and the hidden cases' source."""
    notebook: str
    checks: dict[str, str]
    hidden: dict[str, str]


def _code_cells(notebook: dict) -> list[str]:
    return ["".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            for c in notebook.get("cells", []) if c.get("cell_type") == "code"]


def _hidden_blocks(source: str) -> tuple[str, dict[str, str]]:
    """(``source`` without its hidden blocks, {exercise: hidden code}). Raises ValueError on an
    unbalanced block or one without an exercise name."""
    kept, hidden, current, name = [], {}, None, None
    for line in source.split("\n"):
        stripped = line.strip()
        if stripped.startswith("#") and "BEGIN HIDDEN TESTS" in stripped:
            if current is not None:
                raise ValueError("a '# BEGIN HIDDEN TESTS' inside another")
            match = re.search(r"BEGIN HIDDEN TESTS\s*:\s*(\w+)", stripped)
            if not match:
                raise ValueError(f"name the exercise: '{HIDDEN_BEGIN}: magnitude_prune', got {stripped!r}")
            name, current = match.group(1), []
        elif stripped.startswith("#") and "END HIDDEN TESTS" in stripped:
            if current is None:
                raise ValueError("'# END HIDDEN TESTS' without a '# BEGIN HIDDEN TESTS'")
            indent = min((len(l) - len(l.lstrip()) for l in current if l.strip()), default=0)
            hidden[name] = hidden.get(name, "") + "\n".join(l[indent:] for l in current) + "\n"
            current = None
        elif current is not None:
            current.append(line)
        else:
            kept.append(line)
    if current is not None:
        raise ValueError("'# BEGIN HIDDEN TESTS' without a matching '# END HIDDEN TESTS'")
    return "\n".join(kept), hidden


def read_assignment(notebook: dict, name: str) -> Assignment:
    """The checker calls and hidden cases of a source notebook (nbformat JSON as a dict).
    A checker call is ``exercises.check_<x>(<function>, ...)`` anywhere in a code cell."""
    checks, hidden = {}, {}
    for source in _code_cells(notebook):
        source, blocks = _hidden_blocks(source)
        hidden.update(blocks)
        for match in re.finditer(r"exercises\.check_\w+\((\w+)(?:,\s*\w+)*\)", source):
            checks.setdefault(match.group(1), match.group(0))
    unknown = set(hidden) - set(checks)
    if unknown:
        raise ValueError(f"{name}: hidden tests name {sorted(unknown)}, which no checker call takes")
    return Assignment(name, checks, hidden)


def read_submission(notebook: dict, needed: frozenset[str] = frozenset()) -> tuple[list[list[str]], list[str]]:
    """What to run of a submission: (cells, problems). Each cell is the list of its top-level
    definitions, the literal constants of the cells that hold exercises, and the imports those or
    the names in ``needed`` (what the checker calls and hidden cases use) use (an import of names
    nothing uses, such as the notebook's panels, is left out: grading stays quick), each as source,
    in order. A code cell that does not parse gives a problem naming the
    functions it defines (found by their ``def`` lines) and the error."""
    parsed, problems = [], []
    for source in _code_cells(notebook):
        text = "\n".join(l for l in source.split("\n") if not l.lstrip().startswith(("%", "!")))
        try:
            tree = ast.parse(text)
        except SyntaxError as e:
            names = re.findall(r"^\s*(?:def|class)\s+(\w+)", text, flags=re.M)
            problems.append(f"{','.join(names)}|a syntax error at line {e.lineno} of its cell: {e.msg}")
            continue
        exercise_cell = "falls_back_to" in text
        kept = []
        for node in tree.body:
            keep = isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef))
            if exercise_cell and isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets):
                try:
                    ast.literal_eval(node.value)
                    keep = True
                except ValueError:
                    pass
            if keep:
                kept.append(node)
        parsed.append((text, kept))
    used = {"exercises"} | set(needed) | {n.id for _, kept in parsed for node in kept if not isinstance(node, (ast.Import, ast.ImportFrom))
                            for n in ast.walk(node) if isinstance(n, ast.Name)}
    cells = []
    for text, kept in parsed:
        statements = []
        for node in kept:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                if isinstance(node, ast.ImportFrom) and node.module == "__future__":
                    statements.append(ast.unparse(node))
                    continue
                aliases = [a for a in node.names if (a.asname or a.name).split(".")[0] in used]
                if aliases:
                    node = (ast.Import(names=aliases) if isinstance(node, ast.Import)
                            else ast.ImportFrom(module=node.module, names=aliases, level=node.level))
                    statements.append(ast.unparse(node))
                continue
            first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            statements.append("\n".join(text.split("\n")[first - 1:node.end_lineno]))   # decorators included
        cells.append(statements)
    return cells, problems


# ----------------------------------------------------------------------------- in the grading process

def _run_one(submission_path: str, source_path: str) -> list[dict]:
    """Grade one submission in this (fresh) process: define its code, run the checks."""
    from course_lib.exercises.checking import FAIL, NOT_ATTEMPTED, PASS, CheckResult, learner_code

    name = Path(source_path).name
    assignment = read_assignment(json.loads(Path(source_path).read_text()), name)
    asked = [ast.parse(code) for code in [*assignment.checks.values(), *assignment.hidden.values()]]
    needed = frozenset(n.id for tree in asked for n in ast.walk(tree) if isinstance(n, ast.Name))
    cells, problems = read_submission(json.loads(Path(submission_path).read_text()), needed)
    import course_lib.exercises

    namespace: dict = {"__name__": "__grading__", "exercises": course_lib.exercises}
    broken: dict[str, str] = {}
    for problem in problems:
        names, why = problem.split("|", 1)
        for n in filter(None, names.split(",")):
            broken[n] = why
    for statements in cells:
        for i, statement in enumerate(statements):
            try:
                exec(compile(statement, "<submission>", "exec"), namespace)
            except Exception as e:  # a learner's definition may raise anything; as in the notebook, the cell stops
                rest = "\n".join(statements[i:])
                for n in re.findall(r"^(?:def|class)\s+(\w+)", rest, flags=re.M):
                    broken[n] = f"its cell raised {type(e).__name__}: {e} before defining it"
                break
    rows = []
    for exercise, call in assignment.checks.items():
        if exercise in broken:
            rows.append(dict(exercise=exercise, status="did not run", cases=0, message=broken[exercise]))
            continue
        if exercise not in namespace:
            rows.append(dict(exercise=exercise, status="did not run", cases=0,
                             message=f"the notebook no longer defines {exercise}"))
            continue
        try:
            result = eval(call, namespace)
        except Exception as e:
            rows.append(dict(exercise=exercise, status="did not run", cases=0,
                             message=f"the checker could not run: {type(e).__name__}: {e}"))
            continue
        if not isinstance(result, CheckResult):
            rows.append(dict(exercise=exercise, status="did not run", cases=0, message="the checker returned no result"))
            continue
        status = {PASS: "passed", FAIL: "failed", NOT_ATTEMPTED: "not attempted"}[result.status]
        row = dict(exercise=exercise, status=status, cases=result.cases, message=result.message)
        if status == "passed" and exercise in assignment.hidden:
            hidden = assignment.hidden[exercise]
            count = len(re.findall(r"^assert\b", hidden, flags=re.M))
            # The hidden cases call the learner's own code, never the reference it falls back to.
            own = dict(namespace, **{name: learner_code(namespace[name]) for name in assignment.checks
                                     if name in namespace})
            try:
                exec(compile(hidden, "<hidden cases>", "exec"), own)
                row.update(cases=result.cases + count, message=f"{result.message}; {count} hidden cases passed")
            except AssertionError as e:
                row.update(status="failed", message=f"the checker's {result.cases} cases passed, but a hidden case "
                                                    f"failed: {e or 'an assert without a message'}")
            except Exception as e:
                row.update(status="failed", message=f"the checker's {result.cases} cases passed, but on a hidden "
                                                    f"case your code raised {type(e).__name__}: {e}")
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------- the grader

def _notebooks(paths: list[str]) -> list[Path]:
    found = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(q for q in p.rglob("*.ipynb") if ".ipynb_checkpoints" not in q.parts)
        elif p.is_file():
            found.append(p)
        else:
            raise ValueError(f"submission {str(p)!r} is neither a notebook nor a folder")
    return found


def grade_submission(submission: Path, source_folder: Path, time_limit: float = TIME_LIMIT_S) -> list[Grade]:
    """Grade one submitted notebook in a new process (see the module's docstring)."""
    source = source_folder / submission.name
    label = str(submission)
    if not source.is_file():
        return [Grade(label, submission.name, "", "did not run", 0,
                      f"no course notebook named {submission.name} in {source_folder}: rename the file as handed out")]
    assignment = read_assignment(json.loads(source.read_text()), source.name)
    try:
        json.loads(submission.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        return [Grade(label, source.name, ex, "did not run", 0, f"the file is not a notebook (JSON): {e}")
                for ex in assignment.checks]
    with tempfile.TemporaryDirectory(prefix="grading_") as folder:
        # The grading process imports the same course_lib as this one, wherever it is run from.
        library = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg",
                   PYTHONPATH=os.pathsep.join(filter(None, [library, os.environ.get("PYTHONPATH")])))
        try:
            done = subprocess.run([sys.executable, "-m", "course_lib.exercises.grading", "_one",
                                   str(submission.resolve()), str(source.resolve())],
                                  cwd=folder, capture_output=True, text=True, timeout=time_limit, env=env)
        except subprocess.TimeoutExpired:
            return [Grade(label, source.name, ex, "did not run", 0,
                          f"grading ran past {time_limit:.0f} s (an endless loop, or work done at the top level "
                          f"of a definition?)") for ex in assignment.checks]
    lines = [l for l in done.stdout.splitlines() if l.startswith(_RESULT)]
    if done.returncode != 0 or len(lines) != 1:
        why = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return [Grade(label, source.name, ex, "did not run", 0, f"the grading process failed: {why}")
                for ex in assignment.checks]
    return [Grade(label, source.name, r["exercise"], r["status"], int(r["cases"]), r["message"])
            for r in json.loads(lines[0][len(_RESULT):])]


def grade(submissions: list[str], source_folder: Path | str | None = None,
          time_limit: float = TIME_LIMIT_S) -> list[Grade]:
    """Grade every notebook in ``submissions`` (notebooks or folders), each in its own process."""
    source_folder = Path(source_folder) if source_folder is not None else DEFAULT_SOURCE
    if not source_folder.is_dir():
        raise ValueError(f"source_folder must be the folder of the course's notebooks, got {str(source_folder)!r}")
    return [g for path in _notebooks(submissions) for g in grade_submission(path, source_folder, time_limit)]


def write_csv(grades: list[Grade], path: Path | str) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(asdict(g) for g in grades)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python3 -m course_lib.exercises grade",
                                     description="Grade submitted notebooks: each exercise through its checker "
                                                 "and the hidden cases, one CSV row per submission and exercise.")
    parser.add_argument("submissions", nargs="+", help="submitted notebooks, or folders of them")
    parser.add_argument("--out", default="grades.csv", help="the CSV to write (default grades.csv)")
    parser.add_argument("--source", default=None,
                        help="the folder of the course's (instructor's) notebooks, with the hidden cases; "
                             "default: the course's notebooks/")
    parser.add_argument("--time-limit", type=float, default=TIME_LIMIT_S,
                        help=f"seconds per submission (default {TIME_LIMIT_S:.0f})")
    args = parser.parse_args(argv)
    try:
        grades = grade(args.submissions, args.source, args.time_limit)
    except ValueError as e:
        parser.error(str(e))
    write_csv(grades, args.out)
    counts = {s: sum(g.status == s for g in grades) for s in GRADE_STATUSES}
    print(f"{len({g.submission for g in grades})} submissions, {len(grades)} rows -> {args.out}: "
          + ", ".join(f"{n} {s}" for s, n in counts.items()))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "_one":
        print(_RESULT + json.dumps(_run_one(sys.argv[2], sys.argv[3])))
    else:
        raise SystemExit(main())
