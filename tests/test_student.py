import json
from pathlib import Path

import pytest

from course_tools import student


def test_a_block_inside_a_function_becomes_a_stub_at_its_indentation():
    source = "def f(x):\n    # BEGIN SOLUTION\n    return x + 1\n    # END SOLUTION\nprint(f)"
    stripped = student.strip_solutions(source)
    assert "return x + 1" not in stripped
    assert "    raise NotImplementedError" in stripped and stripped.endswith("print(f)")
    compile(stripped, "<cell>", "exec")


def test_a_block_in_a_nested_statement_or_a_method_is_still_in_a_function():
    source = ("class Observer:\n    def __call__(self, x):\n        if x is not None:\n"
              "            # BEGIN SOLUTION\n            x = x + 1\n            # END SOLUTION\n"
              "        return x\n")
    stripped = student.strip_solutions(source)
    assert "            raise NotImplementedError" in stripped and "x = x + 1" not in stripped
    compile(stripped, "<cell>", "exec")


def test_a_top_level_block_is_removed():
    source = ("check = 1\n# BEGIN SOLUTION\nassert check == 1, 'solution-only'\n# END SOLUTION\n"
              "print(check)")
    stripped = student.strip_solutions(source)
    assert stripped == f"check = 1\n{student.REMOVED}\nprint(check)"
    assert "NotImplementedError" not in stripped
    exec(compile(stripped, "<cell>", "exec"), {"print": lambda *a: None})   # runs: nothing raises


def test_a_block_after_a_function_at_indentation_zero_is_removed():
    source = ("def f():\n    # BEGIN SOLUTION\n    return 1\n    # END SOLUTION\n\n"
              "# BEGIN SOLUTION\nassert f() == 1\n# END SOLUTION\n")
    stripped = student.strip_solutions(source)
    assert stripped.count("raise NotImplementedError") == 1 and student.REMOVED in stripped
    assert "assert f()" not in stripped


def test_an_indented_block_outside_any_function_is_removed_and_stays_valid():
    source = "for i in range(2):\n    # BEGIN SOLUTION\n    assert i < 2\n    # END SOLUTION\n"
    stripped = student.strip_solutions(source)
    assert "NotImplementedError" not in stripped and "    pass" in stripped
    exec(compile(stripped, "<cell>", "exec"), {})


def test_unbalanced_blocks_are_rejected():
    with pytest.raises(ValueError, match="END SOLUTION"):
        student.strip_solutions("# BEGIN SOLUTION\nx = 1")
    with pytest.raises(ValueError, match="BEGIN SOLUTION"):
        student.strip_solutions("x = 1\n# END SOLUTION")
    with pytest.raises(ValueError, match="nested"):
        student.strip_solutions("# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION")


def test_student_notebooks_are_built_from_the_course(tmp_path):
    written = student.build_student_notebooks("notebooks", tmp_path)
    assert written
    for path in written:
        nb = json.loads(path.read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert all(c["outputs"] == [] and c["execution_count"] is None for c in code)
        text = "\n".join(c["source"] for c in code)
        assert "# BEGIN SOLUTION" not in text
        original = json.loads((Path("notebooks") / path.name).read_text())
        blocks = sum(student.count_solution_blocks("".join(c["source"])) for c in original["cells"]
                     if c["cell_type"] == "code")
        assert text.count("raise NotImplementedError") + text.count(student.REMOVED) >= blocks
        for cell in code:   # every stripped cell is still Python (cells with magics aside)
            if not any(line.lstrip().startswith(("%", "!")) for line in cell["source"].split("\n")):
                compile(cell["source"], path.name, "exec")
    with pytest.raises(ValueError, match="out_dir"):
        student.build_student_notebooks("notebooks", "notebooks")
