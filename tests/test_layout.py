"""The house rules, checked on the code itself: importing the library changes nothing in JAX,
arrows point down (configs -> run machinery -> library), a family is named only by its module
and its configs, and the installed packages import from any folder."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from gen_models import models
from tests.conftest import REPO

RUN_MACHINERY = ('experiments', 'sweeps', 'reproductions', 'benchmarks')
STDLIB = sys.stdlib_module_names


def _imported_packages(path: Path) -> set[str]:
    """Top-level names of every module `path` imports (absolute imports)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.partition('.')[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.partition('.')[0])
    return names


def _python_files(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (REPO / folder).rglob('*.py'))


def test_importing_the_library_registers_no_lowering_and_changes_no_jax_setting():
    probe = """
import json, jax
from jax._src.interpreters import mlir
from jax.extend.random import threefry2x32_p
lowering = mlir._platform_specific_lowerings['cpu'].get(threefry2x32_p)
settings = dict(jax.config.values)
import gen_models, gen_models.nets, gen_models.models, gen_models.metrics, gen_models.schema
gen_models.models.families()
changed = sorted(k for k, v in jax.config.values.items() if settings.get(k, object()) != v)
same = mlir._platform_specific_lowerings['cpu'].get(threefry2x32_p) is lowering
print(json.dumps({'changed': changed, 'same_lowering': same}))
"""
    result = subprocess.run(
        [sys.executable, '-c', probe], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == {'changed': [], 'same_lowering': True}


def test_configs_import_only_the_library_and_their_own_helpers():
    allowed = {'configs', 'gen_models', 'ml_collections', '__future__'}
    for path in _python_files('configs'):
        assert _imported_packages(path) - allowed - STDLIB == set(), path


def test_the_library_imports_no_run_machinery_or_configs():
    for path in _python_files('gen_models'):
        assert not _imported_packages(path) & {*RUN_MACHINERY, 'configs'}, path


def _family_checks(path: Path) -> set[str]:
    """String constants compared with a `.name` (e.g. `config.model.name == 'gan'`, `in`) or
    used as dict keys: the if-chains and tables a registry replaces."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if any(isinstance(o, ast.Attribute) and o.attr == 'name' for o in operands):
                found.update(
                    o.value
                    for o in ast.walk(node)
                    if isinstance(o, ast.Constant) and isinstance(o.value, str)
                )
        elif isinstance(node, ast.Dict):
            found.update(k.value for k in node.keys if isinstance(k, ast.Constant))
    return found


@pytest.mark.parametrize('name', sorted(models.families()))
def test_a_family_is_named_only_by_its_module_and_configs(name):
    """No `model.name == 'gan'` or {'gan': ...} outside gen_models/models/gan.py: the layer
    around the models asks the registry and the ModelDef. (The benchmarks' PyTorch twins are
    per family by nature.)"""
    own = REPO / 'gen_models' / 'models' / f'{name}.py'
    naming = [
        path.relative_to(REPO)
        for path in _python_files('gen_models', 'experiments', 'sweeps', 'reproductions')
        if path != own and name in _family_checks(path)
    ]
    assert naming == []


def test_installed_packages_import_outside_the_repository(tmp_path):
    code = 'from experiments import runtime, train; from sweeps import sweep; import reproductions'
    result = subprocess.run(
        [sys.executable, '-c', code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
