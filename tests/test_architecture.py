"""The package's import graph has no circles (issue 20).

Every import of a ``closedloop`` module by another counts, at the top of a module or inside a
function: a function-local import only hides a circle until the function runs.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "closedloop"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imported(name: str, path: Path, modules: dict) -> set[str]:
    """The package modules that module ``name`` imports (the deepest module each names)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    pkg = pkg.rpartition(".")[0]
                base = f"{pkg}.{base}" if base else pkg
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target.startswith("closedloop") and target != name:
                found.add(target)
                found.update(_outer_packages(target, name))
    return found


def _outer_packages(target: str, name: str) -> list[str]:
    """The packages whose ``__init__`` importing ``target`` runs, from the importer ``name``.

    Importing ``a.b.c`` runs ``a/b/__init__.py`` first, unless ``a.b`` is a package of the
    importer itself (it is already being imported then).
    """
    parts = target.split(".")
    outer = [".".join(parts[:k]) for k in range(2, len(parts))]
    return [p for p in outer if not (name == p or name.startswith(p + "."))]


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports."""
    modules = _modules()
    return {name: _imported(name, path, modules) for name, path in modules.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_package_imports_without_circles():
    graph = import_graph()
    assert len(graph) > 100 and sum(map(len, graph.values())) > 400  # the graph was read
    assert circles(graph) == []


def test_a_circle_is_found():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


LAYERS = {
    "cli": 6,
    "__main__": 6,
    "benchmark": 5,
    "tuning": 5,
    "cohort_report": 5,
    "fidelity": 5,
    "evaluation": 4,
    "training": 4,
    "controllers": 4,
    "plots": 4,
    "envs": 3,
    "": 3,  # the package itself: it registers the envs
    "patients": 2,
    "device": 2,
    "device_inputs": 2,
    "device_limits": 2,
    "device_report": 2,
    "disturbances": 2,
    "metrics": 2,
    "neural": 1,
    "_config": 0,
    "_io": 0,
    "_parallel": 0,
    "_ray": 0,
    "_jit_cache": 0,
    "_lazy": 0,
    "_specdirs": 0,
}
"""Layer of each top-level module or subpackage (docs/architecture.md): cli 6, applications 5,
evaluation and training 4, envs 3, physical parts 2, neural 1, the package's utilities 0."""


def _layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else ""
    assert top in LAYERS, f"{module}: add its layer to LAYERS (and docs/architecture.md)"
    return LAYERS[top]


def test_imports_run_down_the_layers():
    graph = import_graph()
    upward = sorted(
        f"{a} -> {b}" for a, targets in graph.items() for b in targets if _layer(b) > _layer(a)
    )
    assert upward == []
