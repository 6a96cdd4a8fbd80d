"""Every import of the collection's own code in plugins/, nested ones included, names a real module.

Ansible packs a module's module_utils by reading its import statements, and a lazy import inside a
function fails only when that code path runs on a host; a moved engine file must fail here instead.
"""

import ast
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[3]
PREFIX = "ansible_collections.dbarch.postgresql."


def collection_imports():
    for path in sorted((ROOT / "plugins").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PREFIX):
                for alias in node.names:
                    yield path.relative_to(ROOT), node.lineno, node.module, alias.name
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith(PREFIX):
                        yield path.relative_to(ROOT), node.lineno, alias.name, None


def _exists(dotted):
    parts = dotted[len(PREFIX) :].split(".")
    base = ROOT.joinpath(*parts)
    return base.with_suffix(".py").is_file() or base.is_dir()


def test_there_are_imports_to_check():
    assert len(list(collection_imports())) > 50


@pytest.mark.parametrize("path,line,module,name", list(collection_imports()))
def test_import_target_exists(path, line, module, name):
    assert _exists(module), "%s:%d imports %s, which does not exist" % (path, line, module)
    if name is not None and not _exists(module + "." + name):
        source = ROOT.joinpath(*module[len(PREFIX) :].split("."))
        source = source.with_suffix(".py")
        defined = {
            target.id if isinstance(target, ast.Name) else getattr(target, "name", None)
            for node in ast.walk(ast.parse(source.read_text()))
            for target in (
                node.targets
                if isinstance(node, ast.Assign)
                else [node]
                if isinstance(node, (ast.FunctionDef, ast.ClassDef))
                else []
            )
        }
        assert name in defined, "%s:%d imports %s from %s: no such name" % (path, line, name, module)
