"""The structure the guarantees rest on, checked so later work cannot undo it."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import assessment_store
from assessment_store import errors

PACKAGE = Path(assessment_store.__file__).resolve().parent
MODULES = sorted(PACKAGE.rglob("*.py"))


def source_of(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def test_the_audit_table_is_written_in_exactly_one_place() -> None:
    hits = [
        (path.relative_to(PACKAGE), line)
        for path in MODULES
        for line in source_of(path).splitlines()
        if re.search(r"insert\s+into\s+assessment_state_audit", line, re.IGNORECASE)
    ]
    assert len(hits) == 1, hits
    assert hits[0][0] == Path("db/statements.py")


def test_no_sql_outside_the_db_package() -> None:
    sql = re.compile(
        r"\b(SELECT|UPDATE|INSERT INTO|DELETE FROM)\b[^\n]*\b(FROM|SET|VALUES|WHERE)\b"
    )
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in MODULES
        if (path.parent.name != "db" and "sqlalchemy import text" in source_of(path))
        or (path.parent.name != "db" and sql.search(source_of(path)))
    ]
    assert offenders == []


def test_the_core_never_imports_the_celery_edge() -> None:
    for path in MODULES:
        tree = ast.parse(source_of(path))
        for node in ast.walk(tree):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            assert not any(name.split(".")[0] == "workers" for name in names), path


def test_every_domain_error_lives_in_errors_py() -> None:
    defined_elsewhere = []
    for path in MODULES:
        if path.name == "errors.py" and path.parent == PACKAGE:
            continue
        for node in ast.walk(ast.parse(source_of(path))):
            if isinstance(node, ast.ClassDef):
                bases = {getattr(base, "id", getattr(base, "attr", "")) for base in node.bases}
                if bases & set(_error_names()):
                    defined_elsewhere.append(f"{path.relative_to(PACKAGE)}:{node.name}")
    assert defined_elsewhere == []


def _error_names() -> list[str]:
    return [
        name
        for name, value in vars(errors).items()
        if inspect.isclass(value) and issubclass(value, errors.AssessmentStoreError)
    ]


def test_modules_stay_small() -> None:
    sizes = {str(p.relative_to(PACKAGE)): len(source_of(p).splitlines()) for p in MODULES}
    assert {name: n for name, n in sizes.items() if n > 450} == {}


def _imports_of(path: Path) -> set[str]:
    """The assessment_store modules a module imports (module-level or not)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source_of(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("assessment_store")}


def test_the_package_has_no_import_cycles() -> None:
    def module_name(path: Path) -> str:
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    names = {module_name(p): p for p in MODULES}
    graph = {
        name: {dep for dep in _imports_of(path) if dep in names and dep != name}
        for name, path in names.items()
        if name != "assessment_store"  # the public facade re-exports everything
    }
    graph = {name: deps - {"assessment_store"} for name, deps in graph.items()}
    visiting: list[str] = []
    done: set[str] = set()

    def visit(name: str) -> None:
        if name in done:
            return
        assert name not in visiting, " -> ".join([*visiting[visiting.index(name) :], name])
        visiting.append(name)
        for dep in sorted(graph.get(name, ())):
            visit(dep)
        visiting.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)
