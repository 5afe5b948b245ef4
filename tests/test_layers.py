"""The shape of the code, enforced: emotionlib is the face pipeline and imports no web or
serving library; emotionlib.serving (the HTTP layer) is imported by service.py alone; no
module imports, even lazily inside a function, a module that imports it back."""
from __future__ import annotations

import ast
import subprocess
import sys

from tests.helpers import ROOT

WEB = {"bentoml", "_bentoml_sdk", "_bentoml_impl", "starlette", "uvicorn", "anyio"}
# The one deliberate exception: EmotionPipeline.from_store opens BentoML's model store, so it
# imports bentoml when called (importing emotionlib never does: tested below).
LAZY_EXCEPTIONS = {("emotionlib.pipeline", "bentoml")}


def module_of(path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, object]:
    return {module_of(path): path for path in sorted((ROOT / "emotionlib").rglob("*.py"))}


def imports(path, known: set[str]) -> list[tuple[str, bool]]:
    """(imported module, lazy: inside a function) for every import statement of a file;
    ``from package import name`` counts as the submodule when there is one."""
    found = []
    tree = ast.parse(path.read_text())
    lazy_nodes = {id(inner) for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                  for inner in ast.walk(node)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in lazy_nodes) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.append((sub if sub in known else node.module, id(node) in lazy_nodes))
    return found


def test_no_import_cycles():
    known = modules()
    graph = {name: {target for target, _ in imports(path, set(known)) if target in known and target != name}
             for name, path in known.items()}
    cycles, state = [], {}

    def visit(name, trail):
        state[name] = "open"
        for target in sorted(graph[name]):
            if state.get(target) == "open":
                cycles.append(trail[trail.index(target):] + [target])
            elif target not in state:
                visit(target, trail + [target])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert len(graph) >= 20
    assert cycles == [], cycles


def test_the_pipeline_imports_no_web_or_serving_library():
    known = modules()
    wrong = []
    for name, path in known.items():
        if name.startswith("emotionlib.serving"):
            continue
        for target, lazy in imports(path, set(known)):
            top = target.split(".")[0]
            if target.startswith("emotionlib.serving"):
                wrong.append(f"{name} imports {target}")
            elif top in WEB and not (lazy and (name, top) in LAZY_EXCEPTIONS):
                wrong.append(f"{name} imports {target}{' (in a function)' if lazy else ''}")
    assert wrong == [], wrong


def test_importing_the_pipeline_loads_no_web_library():
    pipeline = [name for name in modules() if not name.startswith("emotionlib.serving")]
    code = (f"import sys, importlib\nfor name in {pipeline!r}: importlib.import_module(name)\n"
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {sorted(WEB)!r}))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_only_service_py_imports_the_serving_layer():
    sources = [ROOT / "service.py", ROOT / "import_model.py", *(ROOT / "training").rglob("*.py"),
               *(ROOT / "benchmarks").rglob("*.py"), *(ROOT / "docs").rglob("*.py")]
    users = {path.relative_to(ROOT).as_posix() for path in sources
             if any(target.startswith("emotionlib.serving") for target, _ in imports(path, set()))}
    assert users == {"service.py"}
