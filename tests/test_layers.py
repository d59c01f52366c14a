"""The library's layers, read from its source: every import of a course_lib module, function-level ones
included, forms a graph between the top-level modules and packages; it must have no cycle, and the
techniques must not reach up into the zoo's builds, the panels' experiments or the widgets."""
import ast
from pathlib import Path

import course_lib

ROOT = Path(course_lib.__file__).parent
FOUNDATION = {"checks", "data", "models", "train", "measure", "hardware", "encoding", "plots", "selection", "uncertainty"}
TECHNIQUES = {"pruning", "quantization", "codebook", "deep_compression", "distillation", "lowrank", "architectures",
              "model_distillation", "nas", "runtime", "deploy", "mcu", "storage", "language"}
ABOVE_TECHNIQUES = {"zoo_build", "experiments", "widgets", "planner", "exercises", "doctor", "__main__"}


def _component(path: Path) -> str:
    """The top-level module or package a file belongs to: ``nas/space.py`` -> ``nas``."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return parts[0]


def _imported_components(path: Path) -> list[tuple[str, int, bool]]:
    """(component, line, inside a function) for each course_lib import in one file."""
    tree = ast.parse(path.read_text())
    package = path.relative_to(ROOT).with_suffix("").parts[:-1] if path.name != "__init__.py" else \
        path.relative_to(ROOT).parts[:-1]
    functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    in_function = {id(inner) for f in functions for inner in ast.walk(f) if inner is not f}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[:len(package) - (node.level - 1)]) if node.level > 1 else list(package)
                target = base + (node.module.split(".") if node.module else [])
                names = [target + [a.name] for a in node.names] if not node.module or not target else [target]
            elif node.module and node.module.startswith("course_lib"):
                target = node.module.split(".")[1:]
                names = [target + [a.name] for a in node.names] if not target else [target]
            else:
                continue
            for n in names:
                if n:
                    found.append((n[0], node.lineno, id(node) in in_function))
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("course_lib."):
                    found.append((a.name.split(".")[1], node.lineno, id(node) in in_function))
    return found


def _graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        source = _component(path)
        for target, _, _ in _imported_components(path):
            if target != source and (ROOT / target).exists() or (ROOT / f"{target}.py").exists():
                if target != source:
                    edges.setdefault(source, set()).add(target)
    return edges


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_import_graph_has_no_cycle():
    assert _cycle(_graph()) is None, " -> ".join(_cycle(_graph()))


def test_techniques_import_only_the_foundation_and_each_other():
    edges = _graph()
    for technique in TECHNIQUES | FOUNDATION:
        reaching_up = edges.get(technique, set()) & (ABOVE_TECHNIQUES | {"zoo"})
        assert not reaching_up, f"{technique} imports {sorted(reaching_up)}"
    for module in FOUNDATION:
        assert not edges.get(module, set()) & TECHNIQUES, (module, edges.get(module))


def test_no_course_lib_import_hides_in_a_function_below_the_top_layer():
    hidden = [f"{path.relative_to(ROOT)}:{line} imports {target}"
              for path in ROOT.rglob("*.py") if _component(path) in TECHNIQUES | FOUNDATION | {"zoo", "zoo_build", "experiments"}
              for target, line, inside in _imported_components(path) if inside]
    assert not hidden, hidden


def test_the_check_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_every_module_declares_its_public_names():
    """``__all__`` in every module with public definitions, naming only what the module defines or
    re-exports, and every public definition listed (so a reader sees the API, not the imports)."""
    import importlib

    for path in sorted(ROOT.rglob("*.py")):
        if path.name == "__main__.py":
            continue
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        tree = ast.parse(path.read_text())
        defined = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and not n.name.startswith("_")]
        if not defined and path.name == "__init__.py" and name == "course_lib":
            continue
        module = importlib.import_module(name)
        assert hasattr(module, "__all__"), f"{name} declares no __all__"
        missing = [n for n in module.__all__ if not hasattr(module, n)]
        assert not missing, f"{name}.__all__ names what it lacks: {missing}"
        unlisted = [n for n in defined if n not in module.__all__]
        assert not unlisted, f"{name} defines public names missing from __all__: {unlisted}"


def test_the_library_never_imports_the_tooling():
    """``course_tools`` (the student builder, the site) sits apart from what learners read: it uses the
    library, never the other way round."""
    reaching = [f"{path.relative_to(ROOT)}:{node.lineno}" for path in ROOT.rglob("*.py")
                for node in ast.walk(ast.parse(path.read_text()))
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("course_tools")
                or isinstance(node, ast.Import) and any(a.name.startswith("course_tools") for a in node.names)]
    assert not reaching, reaching
