"""The package's shape (docs/architecture.md): folders by what they do, imports that
follow the data flow (a group imports only the groups before it, no cycles, counting
imports inside functions too), the cheap modules never load torch, MLflow only in the
two modules that talk to it, small modules in small folders, and every module or file a
docstring or document names still there."""

import ast
import importlib
import importlib.util
import re
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "reprogrid"
SCRIPTS = PACKAGE / "workflow" / "scripts"  # the rules' entry points: run as scripts, never imported
# the data flow: a config is resolved, recorded, its inputs built (a training command's
# watched from inside), trained, evaluated, analysed and reported; investigate reads what
# was recorded; steps are the workflow's rules, jobs run them (in a process or a warm
# server); cli is the user's command. The packaged workflow comes first: its Python only
# knows where its files are and writes a project's.
GROUPS = ["workflow", "config", "record", "inputs", "watch", "training", "evaluation", "command", "analysis", "report",
          "investigate", "steps", "jobs", "cli"]
# what the cheap rules, `snakemake -n`, the audit and compare import never needs torch
TORCH_FREE_GROUPS = {"workflow", "config", "analysis", "report", "jobs"}
TORCH_FREE = {"cli", "record.hashing", "record.sealed", "record.envvars", "record.mlflow_store",
              "record.mlflow_runs", "training.prediction", "investigate.grid_audit", "investigate.audit_view",
              "investigate.replay", "investigate.diverge", "steps.seed", "steps.setup", "steps.audit",
              "steps.compare", "steps.preflight"}
MLFLOW_MODULES = {"record.mlflow_store", "record.mlflow_runs"}
MAX_LINES, MAX_MODULES_PER_FOLDER = 300, 12


def package_modules() -> list[Path]:
    return [p for p in PACKAGE.rglob("*.py") if SCRIPTS not in p.parents]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(anywhere: bool = True) -> dict[str, set[str]]:
    """{module: reprogrid modules and top-level packages it imports}: anywhere in it, or
    only when it is imported (module level)."""
    modules = {module_name(p): p for p in package_modules()}
    graph = {}
    for name, path in modules.items():
        found = set()
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree) if anywhere else tree.body:
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
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


def group(module: str) -> str:
    return module.split(".")[0]


def test_every_module_is_in_a_group_and_imports_only_the_groups_before_it():
    graph = imports()
    assert {group(m) for m in graph if m} == set(GROUPS)
    upward = sorted(f"{m} -> {d}" for m, deps in graph.items() if m for d in deps
                    if d and not d.startswith("ext:") and GROUPS.index(group(d)) > GROUPS.index(group(m)))
    assert upward == []


def test_no_import_cycles():
    graph = {name: {d for d in deps if not d.startswith("ext:") and d != name} for name, deps in imports().items()}
    graph[""] = set()  # the package's __init__ sets its version and imports nothing of its own
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

    cheap = TORCH_FREE | {m for m in direct if group(m) in TORCH_FREE_GROUPS}
    assert sorted(m for m in cheap if "ext:torch" in loaded(m, set())) == []
    assert {m for m, deps in imports().items() if "ext:mlflow" in deps} == MLFLOW_MODULES


def test_modules_are_small_and_folders_hold_few_of_them():
    too_long = {module_name(p): n for p in package_modules() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert too_long == {}
    crowded = {str(d.relative_to(REPO)): n for d in [PACKAGE, *PACKAGE.iterdir()] if d.is_dir()
               and (n := len([p for p in d.glob("*.py") if p.name != "__init__.py"])) > MAX_MODULES_PER_FOLDER}
    assert crowded == {}
    stems = [p.stem for p in package_modules() if p.name != "__init__.py"]
    assert sorted({s for s in stems if stems.count(s) > 1}) == []  # a module's name alone says which it is


# `reprogrid.<name>` is also how MLflow tags are spelled (reprogrid.hash.weights): a
# dotted reference is code only when its first part is one of the package's groups, or
# the name of a module that no longer exists (data and replay are tags too)
RETIRED = {"audit", "checkpoint", "compare", "configcheck", "data", "diverge", "divergence", "env", "envvars",
           "evaluate", "fit", "hashing", "invocation", "joblog", "library", "models", "power", "prediction",
           "probe", "randomness", "recompute", "records", "replay", "resumecheck", "resumetrial", "rngtrace",
           "runlock", "seeds", "sqlitestore", "stats", "step", "tracking", "tracking_uri", "train", "user",
           "versus", "warm", "streams", "context", "states"} - {"data", "replay"}
DOTTED = re.compile(r"(?<![\w./-])reprogrid((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")
PATH = re.compile(r"(?<![\w./-])((?:reprogrid|benchmarks|tests|scripts|workflow|docs|config|examples|profiles)"
                  r"/[\w./-]*\w)")
DOCUMENTED = ["README.md", "RESULTS.md", "docs", "config/README.md", "reprogrid", "benchmarks", "examples",
              "Snakefile"]


def resolves(reference: str) -> bool:
    parts = reference.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            if not hasattr(found, name):
                return False
            found = getattr(found, name)
        return True
    return False


def documented_files():
    for name in DOCUMENTED:
        path = REPO / name
        for file in [path] if path.is_file() else sorted(path.rglob("*")):
            if file.suffix in (".py", ".md", ".smk", ".sh", ".yaml", ".j2", "") and file.is_file() \
                    and "results" not in file.relative_to(REPO).parts and "__pycache__" not in file.parts:
                yield file


def test_every_module_and_file_a_document_names_exists():
    """After a move, no docstring, comment or document still points at the old place."""
    stale = set()
    for file in documented_files():
        text = file.read_text(errors="replace")
        where = file.relative_to(REPO)
        for tail in DOTTED.findall(text):
            reference = "reprogrid" + tail.rstrip(".")
            first = reference.split(".")[1]
            if (first in GROUPS or first in RETIRED) and not resolves(reference):
                stale.add(f"{where}: {reference}")
        for path in PATH.findall(text):
            if not any(c in path for c in "*{<") and not (REPO / path).exists() and "SCRIPT" not in path:
                stale.add(f"{where}: {path}")
    assert sorted(stale) == []


def test_every_name_imported_from_the_package_exists():
    """`from reprogrid.x import name`, inside functions too, in the package, its tests,
    scripts, benchmarks and examples: a move that left an import behind fails here, not
    in the one run that reaches it."""
    missing = []
    for path in sorted(p for part in ("reprogrid", "tests", "benchmarks", "examples")
                       for p in (REPO / part).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "reprogrid":
                module = importlib.import_module(node.module)
                missing += [f"{path.relative_to(REPO)}: {node.module}.{alias.name}" for alias in node.names
                            if not hasattr(module, alias.name) and not (
                                hasattr(module, "__path__") and importlib.util.find_spec(f"{node.module}.{alias.name}"))]
    assert missing == []
