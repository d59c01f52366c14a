"""The instructor's guide and the FAQ stay in step with the notebooks: every section the FAQ points to
exists under that name, the guide's table counts each notebook's exercises and questions as the
notebook has them, and it has a rubric row for every question; the student builder can leave the
answers out."""
import json
import re
from pathlib import Path

from course_tools import student

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _markdown(path: Path) -> str:
    return "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "markdown")


def _questions(path: Path) -> list[int]:
    return [int(n) for n in re.findall(r"\*\*Question (\d+)\.\*\*", _markdown(path))]


def _exercises(path: Path) -> int:
    return len(re.findall(r"^### Exercise \d+ ·", _markdown(path), flags=re.M))


def test_every_section_the_faq_points_to_exists():
    faq = (ROOT / "FAQ.md").read_text()
    references = re.findall(r"`(\d\d_\w+\.ipynb)` §(\d+)(?: \*([^*]+)\*)?", faq)
    assert len(references) >= 12
    for notebook, number, heading in references:
        text = _markdown(ROOT / "notebooks" / notebook)
        assert re.search(rf"^## {number}\. ", text, flags=re.M), (notebook, number)
        if heading:
            assert f"## {number}. {' '.join(heading.split())}" in text, (notebook, number, heading)
    for notebook, heading in re.findall(r"`(\d\d_\w+\.ipynb)` \*([^*]+)\*", faq):
        assert f"### {' '.join(heading.split())}" in _markdown(ROOT / "notebooks" / notebook), (notebook, heading)


def test_the_guide_counts_each_notebooks_exercises_and_questions_and_has_every_rubric():
    guide = (ROOT / "INSTRUCTORS.md").read_text()
    rows = {int(m[0]): (int(m[1]), int(m[2])) for m in
            re.findall(r"^\s*\| (\d\d) [^|]+\| [^|]+\| [^|]+\| (\d+) \| (\d+) \|$", guide, flags=re.M)}
    rubrics = {(int(a), int(b)) for a, b in re.findall(r"^\| (\d\d) \| (\d+) \| ", guide, flags=re.M)}
    assert sorted(rows) == list(range(len(NOTEBOOKS)))
    for path in NOTEBOOKS:
        number = int(path.name[:2])
        questions = _questions(path)
        assert rows[number] == (_exercises(path), len(questions)), path.name
        assert {(number, q) for q in questions} <= rubrics, path.name
        assert f"### {path.name[:2]} · " in guide, path.name                      # a session plan


def test_a_graded_hand_out_leaves_the_answers_out(tmp_path):
    written = student.build_student_notebooks(ROOT / "notebooks", tmp_path, without_answers=True)
    assert len(written) == len(NOTEBOOKS)
    for path in written:
        text = path.read_text()
        assert "<b>Answer</b>" not in text and "BEGIN SOLUTION" not in text, path.name
        assert "**Question" in text or not _questions(ROOT / "notebooks" / path.name)
