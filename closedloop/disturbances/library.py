"""The scenario library: one TOML file per named scenario in ``disturbances/library/``."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from closedloop._config import ConfigError
from closedloop.disturbances._spec import merge
from closedloop.disturbances.scenario import Scenario

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib


def _library() -> Any:
    return resources.files("closedloop.disturbances") / "library"


def list_scenarios() -> list[str]:
    """Sorted ids of the library scenarios (the TOML file names without ``.toml``)."""
    return sorted(p.name[:-5] for p in _library().iterdir() if p.name.endswith(".toml"))


def load_scenario(name: str, **overrides: Any) -> Scenario:
    """Load a library scenario by id (or a ``.toml`` file by path), with optional overrides.

    Args:
        name: A library id (see :func:`list_scenarios`) or the path of a TOML file.
        **overrides: Top-level spec fields to replace (``duration_s=120``). A mapping merges
            into the component table of the same name (``events={"cough": {"rate_per_hour":
            30}}``); None disables a component (``respiration=None``).

    Returns:
        The validated scenario; its ``name`` is the id (or the file's stem).

    Raises:
        ConfigError: If the id is unknown (naming the valid ids), a key is unknown or a value
            is out of range.
    """
    if name.endswith(".toml") and Path(name).is_file():
        text, stem = Path(name).read_text(encoding="utf-8"), Path(name).stem
    elif name in list_scenarios():
        text, stem = (_library() / f"{name}.toml").read_text(encoding="utf-8"), name
    else:
        raise ConfigError(f"scenario={name!r} is unknown; valid: {', '.join(list_scenarios())}")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"scenario {name!r}: invalid TOML: {exc}") from None
    data.setdefault("name", stem)
    return Scenario.from_dict(merge(data, overrides))

