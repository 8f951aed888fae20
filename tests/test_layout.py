"""The package's layout rules: every module imports on its own, and no layer imports a layer above it.

Layers, lowest first (``shared/STYLE.md``): configs and metrics; the model; checkpoints, model
building and io; the predictors; the jobs beside them (pipelines, training, gaze, export); the front
ends (cli, serve, batch). A module may import its own unit and any lower layer, never a higher layer
and never another unit of its own layer (two front ends, or pipelines and train, stay apart), with
one exception: a CLI command module may start the front end it is named after (``cli/serve.py``
launches ``serve``).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "src" / "sam2kit"

#: top-level unit of the package -> layer (lower imports nothing higher)
LAYERS: dict[str, int] = {
    "config": 0,
    "errors": 0,
    "metrics": 0,
    "modeling": 1,
    "checkpoints": 2,
    "io": 2,
    "build": 3,
    "synthetic": 3,  # synthetic scenes, written with io's mask writers
    "predict": 4,
    "model_spec": 4,  # ModelSpec + load_model: above build, below the jobs and front ends
    "pipelines": 5,
    "train": 5,
    "gaze": 5,
    "export": 5,
    "compat": 5,  # the official package's entry points, over build + predict
    "cli": 6,
    "serve": 6,
    "batch": 6,
}
#: modules that sit outside the layering: the package root re-exports lazily, __main__ runs the CLI
ROOT_MODULES = {"sam2kit", "sam2kit.__main__"}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE_DIR.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> list[str]:
    return sorted(_module_name(p) for p in PACKAGE_DIR.rglob("*.py"))


def _imports_of(path: Path) -> set[str]:
    """Absolute names of the sam2kit modules that ``path`` imports (anywhere in the file)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "sam2kit")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "sam2kit":
                continue
            found.add(target)
            # `from sam2kit.io import masks` imports the submodule sam2kit.io.masks
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                if (PACKAGE_DIR.parent / candidate.replace(".", "/")).with_suffix(".py").exists():
                    found.add(candidate)
    return found


def _unit(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_layers_cover_every_unit() -> None:
    units = {_unit(m) for m in all_modules() if m not in ROOT_MODULES}
    missing = sorted(u for u in units if u not in LAYERS)
    assert not missing, f"units without a layer in LAYERS: {missing} (add them to tests/test_layout.py)"


def test_no_module_imports_a_higher_layer() -> None:
    offences: list[str] = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        module = _module_name(path)
        if module in ROOT_MODULES:
            continue
        unit = _unit(module)
        if unit not in LAYERS:
            continue  # reported by test_layers_cover_every_unit
        for target in sorted(_imports_of(path)):
            target_unit = _unit(target)
            if target_unit is None or target_unit == unit:
                continue
            if target_unit not in LAYERS:
                offences.append(f"{module} imports {target}, which has no layer")
                continue
            if unit == "cli" and module == f"sam2kit.cli.{target_unit}":
                continue  # the command that launches that front end
            if LAYERS[target_unit] > LAYERS[unit]:
                offences.append(f"{module} (layer {LAYERS[unit]}) imports {target} (layer {LAYERS[target_unit]})")
            elif LAYERS[target_unit] == LAYERS[unit]:
                offences.append(f"{module} imports {target}: {unit} and {target_unit} share a layer")
    assert not offences, "layering violations:\n" + "\n".join(offences)


def test_cli_command_modules_do_not_import_each_other() -> None:
    cli_dir = PACKAGE_DIR / "cli"
    commands = {p.stem for p in cli_dir.glob("*.py")} - {"__init__", "common"}
    offences = []
    for name in sorted(commands):
        for target in _imports_of(cli_dir / f"{name}.py"):
            parts = target.split(".")
            if len(parts) > 2 and parts[1] == "cli" and parts[2] in commands:
                offences.append(f"sam2kit.cli.{name} imports {target}")
    assert not offences, "\n".join(offences)


# Each module is imported first, with every sam2kit module dropped from sys.modules before it, so a
# cycle or an import-order dependency shows up; anything printed at import is a side effect.
_IMPORT_EACH = r"""
import contextlib, importlib, io, json, sys
results = {}
for name in json.loads(sys.argv[1]):
    for loaded in [m for m in sys.modules if m == "sam2kit" or m.startswith("sam2kit.")]:
        del sys.modules[loaded]
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            importlib.import_module(name)
        results[name] = out.getvalue()
    except BaseException as exc:
        results[name] = f"IMPORT FAILED: {type(exc).__name__}: {exc}"
print(json.dumps(results))
"""


def test_every_module_imports_on_its_own() -> None:
    modules = [m for m in all_modules() if m != "sam2kit.__main__"]  # running it is the CLI itself
    proc = subprocess.run(
        [sys.executable, "-c", _IMPORT_EACH, json.dumps(modules)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=PACKAGE_DIR.parent,
    )
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    problems = {name: text for name, text in results.items() if text}
    assert set(results) == set(modules)
    assert not problems, "modules that failed or printed at import:\n" + "\n".join(
        f"{name}: {text.strip()[:300]}" for name, text in sorted(problems.items())
    )


@pytest.mark.parametrize("statement", ["import sam2kit", "import sam2kit.cli", "import sam2kit.config"])
def test_light_imports_do_not_import_torch(statement: str) -> None:
    code = f"{statement}\nimport sys\nprint('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False", f"{statement!r} imported torch"
