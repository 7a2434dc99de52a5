"""Numba's on-disk cache, invalidated when a package module a cached function depends on changes.

numba keys the cached machine code of an ``@njit(cache=True)`` function on the content of the
one source file that defines it. A kernel that inlines functions of other modules keeps
loading code compiled from their old versions after they change: the batch kernel
(``batch._chunk``, which inlines ``kernels.run_pulses`` and so ``recording.synthesise``) ran the
``synthesise`` from before commit 8be4447 (no ``SUPPORT_WIDTHS`` restriction) for as long as
``batch.py`` itself was unchanged, and its ECAPs then differed from the scalar kernel's.

Importing this module makes numba's file-backed cache locators stamp a function defined in
the ``closedloop`` package with the contents of its file AND of every package module that file
imports, transitively (any ``import`` statement, also inside functions): a superset of the
modules its compiled code can depend on. Functions outside the package keep numba's stamp.
It must be imported before the functions are decorated: ``closedloop.neural.recording`` imports
it first (so ``kernels``, ``batch`` and the environments' step kernels are covered); importing
it first thing in ``closedloop/__init__.py`` would cover every module of the package.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import os
from pathlib import Path

from numba.core import caching

PACKAGE = "closedloop"
PACKAGE_DIR = Path(__file__).resolve().parent
"""The directory of the ``closedloop`` package."""


def module_file(name: str) -> Path | None:
    """The source file of package module ``name`` (dotted), or None if there is none."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = PACKAGE_DIR.joinpath(*parts[1:])
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def imported_names(tree: ast.AST, package: list[str]) -> set[str]:
    """Dotted names of the modules (and ``from`` names that may be modules) a tree imports."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            names.add(mod)
            names.update(f"{mod}.{a.name}" for a in node.names)
    return names


@functools.cache
def _direct_deps(path: Path, mtime_ns: int, size: int) -> tuple[bytes, tuple[Path, ...]]:
    """SHA-256 of a file's bytes and the package files it imports (memoised per version)."""
    data = path.read_bytes()
    package = list(path.relative_to(PACKAGE_DIR.parent).parts[:-1])  # for relative imports
    try:
        names = imported_names(ast.parse(data), package)
    except SyntaxError:
        names = set()
    files = {module_file(n) for n in names} - {None, path}
    return hashlib.sha256(data).digest(), tuple(sorted(files))


def dependency_files(path: Path) -> list[Path]:
    """``path`` and every package file it imports, transitively, sorted."""
    seen, todo = set(), [Path(path).resolve()]
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        st = os.stat(p)
        todo.extend(_direct_deps(p, st.st_mtime_ns, st.st_size)[1])
    return sorted(seen)


def dependency_stamp(path: Path) -> bytes:
    """SHA-256 over the names and contents of :func:`dependency_files` of ``path``."""
    h = hashlib.sha256()
    for p in dependency_files(path):
        st = os.stat(p)
        h.update(str(p.relative_to(PACKAGE_DIR)).encode() + b"\0")
        h.update(_direct_deps(p, st.st_mtime_ns, st.st_size)[0])
    return h.digest()


def _in_package(py_file: str) -> bool:
    path = Path(py_file).resolve()
    return path.suffix == ".py" and PACKAGE_DIR in path.parents


def _with_dependencies(base: type) -> type:
    """A subclass of numba locator ``base``: :func:`dependency_stamp` for package files."""

    class Locator(base):
        tracks_dependencies = True

        def get_source_stamp(self):
            if _in_package(self._py_file):
                return ("closedloop-deps", dependency_stamp(Path(self._py_file)))
            return super().get_source_stamp()

    Locator.__name__ = Locator.__qualname__ = f"Dependency{base.__name__}"
    return Locator


FILE_LOCATORS = (
    caching.UserProvidedCacheLocator,
    caching.InTreeCacheLocator,
    caching.UserWideCacheLocator,
)
"""numba's locators that stamp a function with its source file (replaced, in their order)."""


def install() -> None:
    """Make numba's cache (for functions decorated from now on) track package dependencies."""
    classes = caching.CacheImpl._locator_classes
    if any(getattr(c, "tracks_dependencies", False) for c in classes):
        return
    caching.CacheImpl._locator_classes = [
        _with_dependencies(c) if c in FILE_LOCATORS else c for c in classes
    ]


install()
