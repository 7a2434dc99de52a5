"""Where the spec folders ``envs/`` and ``agents/`` are: in the wheel, or in the repository."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def spec_dir(folder: str) -> Path:
    """The directory of spec folder ``folder`` (``envs`` or ``agents``).

    A wheel carries a copy in ``closedloop/_data/<folder>`` (see ``setup.py``); an editable
    install or a source checkout uses ``<repository>/<folder>``.
    """
    installed = _PACKAGE / "_data" / folder
    return installed if installed.is_dir() else _PACKAGE.parent / folder
