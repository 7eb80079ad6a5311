"""Dependencies point one way (verify → documents → registry → signing), and Flask stays at the edges.

Read from the source with ``ast``, so an import inside a function or behind
``TYPE_CHECKING`` counts as much as one at the top of a module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOMAIN_PACKAGES = ("signing", "registry", "documents", "verify")
EDGE_MODULES = frozenset({"api.py", "cli.py"})  # each package's HTTP and CLI modules
FLASK_BOUND = frozenset({"flask", "flask_migrate", "flask_sqlalchemy", "werkzeug", "app", "web"})
SKIPPED_DIRECTORIES = frozenset({".venv", "venv", "node_modules", "__pycache__", "instance", "tests"})


def imported_modules(source: str, module: str) -> set[str]:
    """Every module ``source`` imports, as absolute dotted names; ``module`` resolves relative imports."""
    names: set[str] = set()
    package = module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - (node.level - 1)] if node.level else []
            target = ".".join([*base, node.module] if node.module else base)
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def top_level_imports(path: Path) -> set[str]:
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return {name.split(".")[0] for name in imported_modules(path.read_text(encoding="utf-8"), module) if name}


def _python_files(folder: Path) -> list[Path]:
    return sorted(
        path
        for path in folder.rglob("*.py")
        if not SKIPPED_DIRECTORIES & set(path.relative_to(ROOT).parts[:-1])
        and not any(part.startswith(".") for part in path.relative_to(ROOT).parts)
    )


def _domain_files(*packages: str) -> list[Path]:
    return [path for package in packages for path in _python_files(ROOT / package)]


def _id(path: Path) -> str:
    return str(path.relative_to(ROOT))


CORE_FILES = [path for path in _domain_files(*DOMAIN_PACKAGES) if path.name not in EDGE_MODULES]


@pytest.mark.parametrize("path", CORE_FILES, ids=_id)
def test_domain_code_imports_neither_flask_nor_app(path: Path) -> None:
    assert not top_level_imports(path) & FLASK_BOUND


@pytest.mark.parametrize("path", _domain_files("signing"), ids=_id)
def test_signing_knows_no_database_and_no_higher_layer(path: Path) -> None:
    assert not top_level_imports(path) & {"sqlalchemy", "registry", "verify", "deployment", *FLASK_BOUND}


@pytest.mark.parametrize("path", _domain_files("registry"), ids=_id)
def test_registry_does_not_import_verify(path: Path) -> None:
    assert "verify" not in top_level_imports(path)


@pytest.mark.parametrize("path", _domain_files("signing", "registry"), ids=_id)
def test_registry_and_signing_do_not_import_documents(path: Path) -> None:
    assert "documents" not in top_level_imports(path)


@pytest.mark.parametrize("path", _domain_files("documents"), ids=_id)
def test_documents_imports_no_verify(path: Path) -> None:
    # verify reads PDFs through documents; documents draws on registry and signing only.
    assert "verify" not in top_level_imports(path)


@pytest.mark.parametrize("path", [p for p in _python_files(ROOT) if p != ROOT / "app.py"], ids=_id)
def test_nothing_but_tests_imports_app(path: Path) -> None:
    assert "app" not in top_level_imports(path)


def test_the_scan_sees_every_package_and_the_edge_modules_flask_imports() -> None:
    for package in DOMAIN_PACKAGES:
        assert any(path.parent.name == package for path in CORE_FILES), f"no modules found in {package}/"
    # Proof the scan detects real imports: the HTTP modules do import Flask.
    assert "flask" in top_level_imports(ROOT / "registry" / "api.py")
    assert "flask" in top_level_imports(ROOT / "verify" / "api.py")
    assert "flask" in top_level_imports(ROOT / "documents" / "api.py")
    assert "flask" in top_level_imports(ROOT / "documents" / "cli.py")
    # ... and the layer imports the rules forbid or allow.
    assert "registry" in top_level_imports(ROOT / "documents" / "model.py")
    assert "documents" in top_level_imports(ROOT / "verify" / "api.py")


@pytest.mark.parametrize(
    ("source", "module", "expected"),
    [
        pytest.param("import flask", "registry.x", {"flask"}, id="import"),
        pytest.param("import flask.json as j", "registry.x", {"flask.json"}, id="dotted-import"),
        pytest.param("from flask import Flask", "registry.x", {"flask", "flask.Flask"}, id="from-import"),
        pytest.param("def f():\n    from app import create_app", "registry.x", {"app", "app.create_app"}, id="late"),
        pytest.param(
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import verify",
            "registry.x",
            {"typing", "typing.TYPE_CHECKING", "verify"},
            id="type-checking",
        ),
        pytest.param("from . import api", "registry.x", {"registry", "registry.api"}, id="relative"),
        pytest.param("from .api import bp", "registry.x", {"registry.api", "registry.api.bp"}, id="relative-module"),
        pytest.param("from ..verify import v", "registry.sub.x", {"registry.verify", "registry.verify.v"}, id="up"),
    ],
)
def test_import_scan_finds_every_form_of_import(source: str, module: str, expected: set[str]) -> None:
    assert imported_modules(source, module) == expected
