"""The package's shape: imports run one way (no cycles, not even through function-level imports), and only the
CLI (and a spawned worker's entry point) sets process-wide state."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "textclf"
# Calls that change the whole process: thread counts, plotting backends, stdout, logging and warning settings,
# signal handlers.
PROCESS_WIDE = {"set_num_threads", "use", "redirect_stdout", "basicConfig", "set_verbosity_error",
                "set_verbosity_warning", "filterwarnings", "signal"}
# Process entry points, where such settings belong: the console script, the search's spawned worker processes and
# the Ray actors of predict --engine ray (BatchPredictor.__init__).
ENTRY_POINTS = {("cli", "main"), ("cli", "_set_threads"), ("cli", "cmd_export"), ("cli", "cmd_train"),
                ("cli", "cmd_search"), ("cli", "cmd_benchmark"), ("cli", "cmd_serve"),
                ("training.search", "_worker_main"), ("inference.distributed", "__init__")}


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(root: Path = PACKAGE) -> dict[str, Path]:
    return {module_name(p, root): p for p in sorted(root.rglob("*.py"))}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Every textclf module ``path`` imports, at any depth of the file (functions too): ``from a.b import c``
    counts as ``a.b.c`` when that is a module, else ``a.b``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "textclf"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "textclf":
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in known else node.module)
    return found & known


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None (depth-first search with three colours)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    found = modules(root)
    return {name: imports_of(path, set(found)) - {name} for name, path in found.items()}


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert len(graph) > 30 and "textclf.training.run" in graph
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_check_finds_a_function_level_cycle(tmp_path):
    package = tmp_path / "textclf"
    (package / "reports").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "reports" / "__init__.py").write_text("")
    (package / "config.py").write_text("def f():\n    from textclf.reports.card import g\n")
    (package / "reports" / "card.py").write_text("from textclf import config\n\ndef g():\n    pass\n")
    (package / "tasks.py").write_text("import textclf.config\n")
    graph = import_graph(package)
    assert graph["textclf.tasks"] == {"textclf.config"}
    assert find_cycle(graph) == ["textclf.config", "textclf.reports.card", "textclf.config"]


@pytest.mark.parametrize("lower, upper", [
    ("textclf.config", "textclf.data.loading"), ("textclf.tasks", "textclf.config"),
    ("textclf.data.loading", "textclf.training"), ("textclf.inference.predictor", "textclf.training"),
    ("textclf.inference.predictor", "textclf.evaluation"), ("textclf.reports.rundir", "textclf.training"),
    ("textclf.modeling", "textclf.inference"), ("textclf.hub", "textclf.reports"),
    ("textclf.serving", "textclf.training"), ("textclf.serving", "textclf.evaluation"),
    ("textclf.inference", "textclf.serving"), ("textclf.modeling", "textclf.serving"),
])
def test_lower_stages_never_import_higher_ones(lower, upper):
    """Imports run from the CLI down to config and tasks: a stage never reaches up the pipeline (prediction never
    imports training code; config and tasks import no stage)."""
    graph = import_graph()
    seen, todo = set(), [m for m in graph if m == lower or m.startswith(lower + ".")]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo += graph[module]
    assert not [m for m in seen if m == upper or m.startswith(upper + ".")]


def test_only_entry_points_set_process_wide_state():
    offenders = []
    for name, path in modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        short = name.removeprefix("textclf.")
        functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        owner = {id(call): fn.name for fn in functions for call in ast.walk(fn) if isinstance(call, ast.Call)}
        for call in ast.walk(tree):
            if not isinstance(call, ast.Call):
                continue
            func = call.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in PROCESS_WIDE and (short, owner.get(id(call))) not in ENTRY_POINTS:
                if called == "use" and not (isinstance(func, ast.Attribute) and getattr(func.value, "id", "")
                                            == "matplotlib"):
                    continue
                offenders.append(f"{name}:{call.lineno} {called}() in {owner.get(id(call), 'module level')}")
    assert not offenders, offenders
