"""The package's layers (ARCHITECTURE.md, "Layers"): core -> components -> stages -> CLI.

Walks every module's imports with ``ast`` (top-level and function-level alike, since a
function-level import only hides a dependency) and fails on an import cycle, a private
name taken from another module, the library importing the CLI, or a package importing one
it is not allowed to.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Core modules: import nothing of weaksup but other core modules.
CORE = {
    "errors",
    "tables",
    "uris",
    "outputs",
    "progress",
    "hashing",
    "locks",
    "pools",
    "threads",
    "devices",
    "video_io",
    "blocks",
    "bulk",
    "ray_engine",
    "duplicate_ids",
}
#: What each package (or top-level orchestration module) may import besides the core.
ALLOWED = {
    "labels": set(),
    "models": set(),
    "data": set(),
    "synth": {"labels"},
    "assembly": {"labels", "data"},
    "dedupe": {"assembly"},
    "fetch": {"assembly"},
    "train": {"data", "models"},
    "eval": {"data", "models", "labels", "train"},
    "quickstart": {"labels", "synth", "fetch", "assembly", "dedupe", "train", "eval", "data", "models"},
    "cli": {"labels", "synth", "fetch", "assembly", "dedupe", "train", "eval", "data", "models", "quickstart"},
}


def _modules() -> dict[str, Path]:
    mods: dict[str, Path] = {}
    for path in sorted((ROOT / "weaksup").rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[1] == "cli":  # weaksup/cli links to cli/, walked below
            continue
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    for path in sorted((ROOT / "cli").glob("*.py")):
        mods["weaksup.cli" + ("" if path.stem == "__init__" else "." + path.stem)] = path
    return mods


MODULES = _modules()


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str) -> list[tuple[str, str]]:
    """(imported module, imported name or "") for every weaksup import of ``module``."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    out: list[tuple[str, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(_resolve(a.name), "") for a in node.names if a.name.split(".")[0] == "weaksup"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "weaksup":
            for a in node.names:
                full = f"{node.module}.{a.name}"
                out.append((full, "") if full in MODULES else (_resolve(node.module), a.name))
    return [(m, n) for m, n in out if m and m != module]


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "weaksup"


def test_the_walk_sees_every_package() -> None:
    layers = {_layer(m) for m in MODULES}
    assert {"cli", "assembly", "train", "eval", "video_io", "bulk"} <= layers
    assert len(MODULES) > 80


def test_no_import_cycles() -> None:
    graph = {m: {d for d, _ in _imports(m)} for m in MODULES}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_no_private_name_crosses_a_module() -> None:
    bad = [
        f"{m} imports {n} from {d}"
        for m in MODULES
        for d, n in _imports(m)
        if n.startswith("_") and not n.startswith("__")
    ]
    for m, path in MODULES.items():  # module._name on an imported weaksup module
        tree = ast.parse(path.read_text(encoding="utf-8"))
        aliases = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                aliases.update({a.asname: a.name for a in node.names if a.asname and a.name.startswith("weaksup")})
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("weaksup"):
                aliases.update(
                    {
                        a.asname or a.name: f"{node.module}.{a.name}"
                        for a in node.names
                        if f"{node.module}.{a.name}" in MODULES
                    }
                )
        bad += [
            f"{m} uses {aliases[node.value.id]}.{node.attr}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ]
    assert not bad, bad


def test_layers_import_only_what_they_may() -> None:
    bad = []
    for m in MODULES:
        src = _layer(m)
        for d, _ in _imports(m):
            dst = _layer(d)
            if dst == src or dst in CORE or dst == "weaksup":
                continue
            if src in CORE or dst not in ALLOWED.get(src, set()):
                bad.append(f"{m} -> {d}")
    assert not bad, "imports across layers not in ARCHITECTURE.md's table: " + ", ".join(bad)


def test_the_library_never_imports_the_cli() -> None:
    bad = [f"{m} -> {d}" for m in MODULES if _layer(m) != "cli" for d, _ in _imports(m) if _layer(d) == "cli"]
    assert not bad, bad


@pytest.mark.slow
def test_fc_only_loads_no_video_or_training_code() -> None:
    code = (
        "import sys, weaksup.eval.fc_only; "
        "print(' '.join(m for m in sys.modules if m == 'av' or m == 'ray' or m.startswith(('weaksup.data', "
        "'weaksup.train', 'weaksup.assembly', 'weaksup.dedupe', 'weaksup.video_io', 'weaksup.eval.extract'))))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [], proc.stdout


@pytest.mark.slow
def test_python_m_weaksup_train_runs_from_the_checkout() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "weaksup.train", "--help"], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "--manifest" in proc.stdout and "--preset" in proc.stdout
