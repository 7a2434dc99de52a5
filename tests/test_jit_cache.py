"""closedloop._jit_cache: numba's cache stamp covers the package modules a file imports."""

from __future__ import annotations

import os

from closedloop import _jit_cache
from closedloop.neural import batch


def _package(tmp_path, files):
    root = tmp_path / "closedloop"
    (root / "sub").mkdir(parents=True)
    for name, text in files.items():
        (root / name).write_text(text)
    return root


def test_batch_kernel_stamp_covers_the_modules_it_inlines():
    files = {
        p.relative_to(_jit_cache.PACKAGE_DIR).as_posix()
        for p in _jit_cache.dependency_files(_jit_cache.PACKAGE_DIR / "neural" / "batch.py")
    }
    assert {
        "neural/batch.py",
        "neural/kernels.py",
        "neural/recording.py",
        "neural/estimators.py",
        "neural/rng.py",
    } <= files
    locator = batch._chunk._cache._impl.locator
    assert getattr(type(locator), "tracks_dependencies", False)


def test_stamp_changes_with_an_indirect_dependency(tmp_path, monkeypatch):
    root = _package(
        tmp_path,
        {
            "__init__.py": "",
            "sub/__init__.py": "",
            "a.py": "def f():\n    from .sub import b\n    return b.g()\n",
            "sub/b.py": "from closedloop.sub.c import h\n\ndef g():\n    return h()\n",
            "sub/c.py": "def h():\n    return 1\n",
            "other.py": "def k():\n    return 2\n",
        },
    )
    monkeypatch.setattr(_jit_cache, "PACKAGE_DIR", root)
    a = root / "a.py"
    assert {p.name for p in _jit_cache.dependency_files(a)} == {
        "a.py",
        "b.py",
        "c.py",
        "__init__.py",
    }
    before = _jit_cache.dependency_stamp(a)
    (root / "other.py").write_text("def k():\n    return 3\n")  # not imported by a.py
    assert _jit_cache.dependency_stamp(a) == before
    c = root / "sub" / "c.py"
    c.write_text("def h():\n    return 10\n")
    os.utime(c, ns=(1, 1))  # a new version even on a coarse-timestamp file system
    assert _jit_cache.dependency_stamp(a) != before
