"""Build hook: ship the top-level ``envs/`` and ``agents/`` spec folders inside the wheel.

They live at the repository's top level (see shared/style.md) but must also be available to a
non-editable install; they are copied to ``closedloop/_data/<folder>/`` in the build. An
editable install reads them from the repository directly (``closedloop/_specdirs.py``).
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SPEC_FOLDERS = ("envs", "agents")
SPEC_SUFFIXES = {".toml", ".json", ".md", ".zip", ".png", ".yml"}


class BuildPyWithSpecs(build_py):
    """``build_py`` that also copies the spec folders into the package."""

    def run(self):
        """Build the package, then copy the spec files."""
        super().run()
        root = Path(__file__).resolve().parent
        for folder in SPEC_FOLDERS:
            for src in (root / folder).rglob("*"):
                if src.is_file() and src.suffix in SPEC_SUFFIXES:
                    dst = Path(self.build_lib) / "closedloop" / "_data" / src.relative_to(root)
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, dst)


setup(cmdclass={"build_py": BuildPyWithSpecs})
