"""The folders' rules hold in the code (docs/architecture.md): kdc_model's rooms import downwards only
(training -> inference -> network), the node runtime imports none of the tools, and no modules import
each other in a circle. Read from every import statement, those inside functions too."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("kdc_model", "kdc_ros")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """{module: the modules of this project it imports} (a name imported from a package that is a
    module of its own counts as that module)."""
    files = {module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}
    graph = {}
    for module, path in files.items():
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
                found.add(base)
                found |= {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in files}
        graph[module] = {m for m in found if m in files and m != module}
    return graph


GRAPH = imports()


def test_no_import_circles():
    state, circles = {}, []

    def visit(module, stack):
        state[module] = "open"
        for other in sorted(GRAPH[module]):
            if state.get(other) == "open":
                circles.append(stack[stack.index(other):] + [other])
            elif other not in state:
                visit(other, stack + [other])
        state[module] = "done"

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])
    assert not circles, circles


@pytest.mark.parametrize("room, must_not_reach", [
    ("kdc_model.network", ("kdc_model.inference", "kdc_model.training", "kdc_ros")),
    ("kdc_model.inference", ("kdc_model.training", "kdc_ros")),
    ("kdc_model.training", ("kdc_ros",)),
    ("kdc_ros.node", ("kdc_ros.bags", "kdc_ros.replay", "kdc_ros.bench", "kdc_ros.demo", "kdc_ros.teacher",
                      "kdc_ros.harness")),
])
def test_rooms_import_downwards_only(room, must_not_reach):
    wrong = sorted(f"{module} -> {other}" for module, others in GRAPH.items() if module.startswith(room)
                   for other in others if other.startswith(must_not_reach))
    assert not wrong, wrong
