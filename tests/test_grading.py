"""The grader (course_lib.exercises.grading): solutions pass, student versions are not attempted,
wrong solutions fail with the mistake named (by a checker or by a hidden case), a cell that does not
parse or a definition that raises makes only its exercise "did not run", a submission that never
ends or is not a notebook gets rows that say so, and one submission cannot change another's grade.
Also the student builder's removal of hidden tests, and the doctor."""
import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from course_lib import doctor, runtime
from course_lib.exercises import grading
from course_tools import student

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
PRUNING = "01_pruning.ipynb"


def _notebook() -> dict:
    return json.loads((NOTEBOOKS / PRUNING).read_text())


def _replace_in_cell(nb: dict, marker: str, old: str, new: str) -> None:
    cell = next(c for c in nb["cells"] if c["cell_type"] == "code" and marker in "".join(c["source"]))
    source = "".join(cell["source"])
    assert old in source, old
    cell["source"] = source.replace(old, new)


def _write(folder: Path, nb: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / PRUNING).write_text(json.dumps(nb))
    return folder / PRUNING


def _wrong_submission() -> dict:
    """magnitude_prune truncates k with int() (the checker names it); cubic_sparsity passes the checker
    but not a hidden case; choose_sparsities' cell does not parse; remove_channels comes after a class
    body that raises; select_channels is left as handed out."""
    nb = student.student_notebook(_notebook())
    _replace_in_cell(nb, "def magnitude_prune", 'raise NotImplementedError("exercise: write your solution here")',
                     "k = int(sparsity * weight.numel())\n    mask = torch.ones_like(weight)\n    if k > 0:\n"
                     "        mask.view(-1)[torch.topk(weight.abs().flatten(), k, largest=False).indices] = 0\n"
                     "    return weight * mask")
    # Right on the checker's cases (which keep initial >= 0 and n <= 10), wrong for n = 20: a table, not the formula.
    _replace_in_cell(nb, "def cubic_sparsity", 'raise NotImplementedError("exercise: write your solution here")',
                     "if total_steps > 10:\n        return final\n"
                     "    return float(final + (initial - final) * (1 - step / total_steps) ** 3)")
    _replace_in_cell(nb, "def choose_sparsities", "def choose_sparsities(scan, baseline_accuracy, max_drop):",
                     "def choose_sparsities(scan, baseline_accuracy, max_drop)")
    _replace_in_cell(nb, "def remove_channels", "def remove_channels(conv, bn, next_conv, keep):",
                     "class Broken:\n    value = 1 / 0\n\ndef remove_channels(conv, bn, next_conv, keep):")
    return nb


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """The solution notebook and a wrong one graded as the grading process grades one submission
    (``_run_one``, here in this process); then, through the command, each in its own process, a
    submission that passes magnitude_prune's checker by replacing it from a class body and, graded
    after it, the student version."""
    root = tmp_path_factory.mktemp("submissions")
    source = str(NOTEBOOKS / PRUNING)
    by = {name: {r["exercise"]: r for r in grading._run_one(str(_write(root / name, nb)), source)}
          for name, nb in (("a_solution", _notebook()), ("c_wrong", _wrong_submission()))}
    cheat = student.student_notebook(_notebook())
    _replace_in_cell(cheat, "def select_channels", "def select_channels(weight, count):",
                     "class Cheat:\n    import course_lib.exercises as e\n"
                     "    e.check_magnitude_prune = lambda f, e=e: e.checking.passed('magnitude_prune', 99, 'cheated')\n\n"
                     "def select_channels(weight, count):")
    paths = [_write(root / "d_cheat", cheat), _write(root / "e_after_the_cheat", student.student_notebook(_notebook()))]
    out = root / "grades.csv"
    done = subprocess.run([sys.executable, "-m", "course_lib.exercises", "grade", *map(str, paths), "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    for r in csv.DictReader(out.open()):
        by.setdefault(Path(r["submission"]).parent.name, {})[r["exercise"]] = r
    return by, done.stdout


EXERCISES = ["magnitude_prune", "cubic_sparsity", "choose_sparsities", "select_channels", "remove_channels"]


def test_the_solutions_pass_with_their_hidden_cases(graded):
    by, stdout = graded
    assert list(by["a_solution"]) == EXERCISES
    assert all(r["status"] == "passed" for r in by["a_solution"].values()), by["a_solution"]
    assert "3 hidden cases passed" in by["a_solution"]["magnitude_prune"]["message"]
    assert int(by["a_solution"]["magnitude_prune"]["cases"]) == 8 + 3
    assert "2 submissions, 10 rows" in stdout


def test_the_student_version_is_not_attempted(graded):
    assert all(r["status"] == "not attempted" for r in graded[0]["e_after_the_cheat"].values())


def test_a_wrong_submission_gets_each_mistake_named(graded):
    wrong = graded[0]["c_wrong"]
    assert wrong["magnitude_prune"]["status"] == "failed" and "round" in wrong["magnitude_prune"]["message"]
    assert wrong["cubic_sparsity"]["status"] == "failed"
    assert "hidden case failed: cubic_sparsity(5, 20, 0.9, 0.3)" in wrong["cubic_sparsity"]["message"]
    assert wrong["choose_sparsities"]["status"] == "did not run"
    assert "syntax error" in wrong["choose_sparsities"]["message"]
    assert wrong["remove_channels"]["status"] == "did not run"
    assert "ZeroDivisionError" in wrong["remove_channels"]["message"]
    assert wrong["select_channels"]["status"] == "not attempted"


def test_a_submission_cannot_change_another_ones_grade(graded):
    by = graded[0]
    # It fooled its own process's checker, not the hidden cases (which call its own code), nor any other process.
    assert by["d_cheat"]["magnitude_prune"]["status"] == "failed"
    assert "99 cases passed, but on a hidden case your code raised NotImplementedError" in \
        by["d_cheat"]["magnitude_prune"]["message"]
    assert by["e_after_the_cheat"]["magnitude_prune"]["status"] == "not attempted"


def test_a_submission_that_never_ends_or_is_not_a_notebook_gets_rows_that_say_so(tmp_path):
    nb = student.student_notebook(_notebook())
    _replace_in_cell(nb, "def cubic_sparsity", "def cubic_sparsity(step, total_steps, final, initial=0.0):",
                     "class Forever:\n    while True:\n        pass\n\ndef cubic_sparsity(step, total_steps, final, "
                     "initial=0.0):")
    endless = _write(tmp_path / "endless", nb)
    (tmp_path / "garbled").mkdir()
    (tmp_path / "garbled" / PRUNING).write_text("{ not json")
    (tmp_path / "renamed").mkdir()
    (tmp_path / "renamed" / "my_pruning.ipynb").write_text(json.dumps(_notebook()))
    grades = grading.grade([str(endless), str(tmp_path / "garbled"), str(tmp_path / "renamed")], time_limit=3)
    endless_rows = [g for g in grades if "endless" in g.submission]
    assert len(endless_rows) == 5 and all(g.status == "did not run" and "ran past 3 s" in g.message
                                          for g in endless_rows)
    garbled = [g for g in grades if "garbled" in g.submission]
    assert len(garbled) == 5 and all("not a notebook" in g.message for g in garbled)
    renamed = [g for g in grades if "renamed" in g.submission]
    assert len(renamed) == 1 and "no course notebook named my_pruning.ipynb" in renamed[0].message


def test_every_notebook_declares_its_exercises_and_hidden_cases():
    total = 0
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        assignment = grading.read_assignment(json.loads(path.read_text()), path.name)
        total += len(assignment.checks)
        assert set(assignment.hidden) <= set(assignment.checks)
    assert total >= 40
    hidden = {p.name: grading.read_assignment(json.loads(p.read_text()), p.name).hidden
              for p in NOTEBOOKS.glob("*.ipynb")}
    assert set(hidden[PRUNING]) == {"magnitude_prune", "cubic_sparsity"}


def test_the_student_version_has_no_hidden_tests():
    source = "x = 1\n# BEGIN HIDDEN TESTS: f\nassert f(1) == 2\n# END HIDDEN TESTS\ny = 2"
    assert student.strip_hidden_tests(source) == f"x = 1\n{student.HIDDEN_REMOVED}\ny = 2"
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        nb = student.student_notebook(json.loads(path.read_text()))
        text = json.dumps(nb)
        assert "BEGIN HIDDEN TESTS" not in text and "END HIDDEN TESTS" not in text, path.name
    with pytest.raises(ValueError, match="without a matching"):
        student.strip_hidden_tests("# BEGIN HIDDEN TESTS: f\nassert True")
    with pytest.raises(ValueError, match="name the exercise"):
        grading._hidden_blocks("# BEGIN HIDDEN TESTS\nassert True\n# END HIDDEN TESTS")


# ----------------------------------------------------------------------------- the doctor

def test_the_doctor_reports_this_machine_and_which_claims_it_checks(capsys):
    assert doctor.main(["doctor"]) == 0
    text = capsys.readouterr().out
    for needed in ("torch", "onnxruntime", "cores:", "int8 features:", "GPU:", "chromium", "arm-none-eabi-gcc",
                   "data mnist", "data fashion-mnist", "zoo", "claims that depend on this machine"):
        assert needed in text, needed
    assert "FAILED" not in text
    cpu = runtime.cpu_int8()
    line = next(l for l in text.splitlines() if "int8 is faster than fp32 on ONNX Runtime" in l)
    assert ("NOT checked" in line) == (not cpu.dot_product)


def test_the_doctors_claims_follow_the_machine():
    avx2_only = runtime.classify_cpu("x86_64", "Linux", {"avx2"})
    claims = {c.claim: c.checked for c in doctor.claims(avx2_only, cores=1, tools={})}
    assert not claims["int8 is faster than fp32 on ONNX Runtime"]
    assert claims["int8 at least 2x faster than fp32 on the small CNN at batch 64"]           # AVX2 suffices there
    assert not claims["two Optuna workers search about twice as fast as one"]
    assert not claims["the C program runs on a Cortex-M4 (QEMU), equal to the NumPy forward"]
    arm = runtime.classify_cpu("aarch64", "Linux", {"asimddp"})
    assert {c.claim: c.checked for c in doctor.claims(arm, cores=4, tools={})}["int8 is faster than fp32 on ONNX Runtime"]


def test_the_doctor_names_a_corrupted_data_file(tmp_path, monkeypatch, dataset_copy):
    target = dataset_copy / "fashion-mnist" / "fashion_mnist_by_class.npz"
    target.write_bytes(target.read_bytes()[:-10])
    monkeypatch.setenv("COURSE_DATA_DIR", str(dataset_copy))
    rows = {what: (ok, detail) for what, ok, detail in doctor.checksums()}
    assert rows["data fashion-mnist"] == (False, "1 files; wrong or missing: fashion_mnist_by_class.npz")
    assert rows["data mnist"][0]
