"""The package's shape: imports follow the data flow (no cycles, counting imports
inside functions too), importing the cheap modules never loads torch, and the one
module that talks to MLflow is the only one that imports it."""

import ast
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "reprogrid"
# config, grid, seeds and hashing of files never need torch: the cheap rules and
# `snakemake -n` stay cheap (design.md, "Who may import whom")
TORCH_FREE = {"config", "prediction", "seeds", "hashing", "records", "envvars", "tracking_uri", "divergence",
              "step", "steps", "steps.seed", "steps.setup", "warm", "invocation", "joblog", "cli", "audit",
              "compare", "stats", "report"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(anywhere: bool = True) -> dict[str, set[str]]:
    """{module: reprogrid modules and top-level packages it imports}: anywhere in it, or
    only when it is imported (module level)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        found = set()
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree) if anywhere else tree.body:
            if isinstance(node, ast.ImportFrom) and node.module:
                base = node.module
                names = [f"{base}.{alias.name}" for alias in node.names] + [base]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for full in names:
                if full.startswith("reprogrid."):
                    inner = full.removeprefix("reprogrid.")
                    if inner in modules:
                        found.add(inner)
                elif full == "reprogrid":
                    found.add("")
                else:
                    found.add("ext:" + full.split(".")[0])
        graph[name] = found
    return graph


def test_no_import_cycles():
    graph = {name: {d for d in deps if not d.startswith("ext:") and d != name} for name, deps in imports().items()}
    graph[""] = set()  # the package's __init__ sets one variable and imports nothing of its own
    cycles, state = [], {}

    def visit(node, path):
        state[node] = "open"
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == "open":
                cycles.append(path[path.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, path + [dep])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_torch_and_mlflow_stay_where_they_belong():
    direct = imports(anywhere=False)

    def loaded(module, seen):  # everything importing `module` loads, transitively
        for dep in direct.get(module, ()):
            if dep not in seen:
                seen.add(dep)
                loaded(dep, seen)
        return seen

    assert {m for m in TORCH_FREE if "ext:torch" in loaded(m, set())} == set()
    assert {m for m, deps in imports().items() if "ext:mlflow" in deps} == {"tracking"}
