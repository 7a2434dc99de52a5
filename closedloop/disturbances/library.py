"""The scenario library: one TOML file per named scenario in ``disturbances/library/``."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from closedloop._config import ConfigError, short_repr
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


def load_scenario(name: str | Path | Mapping[str, Any], /, **overrides: Any) -> Scenario:
    """Load a library scenario by id (or a ``.toml`` file by path, or a table), with overrides.

    Args:
        name: A library id (see :func:`list_scenarios`), the path of a TOML file (str or
            Path), or a mapping in the TOML schema (:meth:`Scenario.from_dict`).
        **overrides: Top-level spec fields to replace (``duration_s=120``). A mapping merges
            into the component table of the same name (``events={"cough": {"rate_per_hour":
            30}}``); None disables a component (``respiration=None``).

    Returns:
        The validated scenario; its ``name`` is the id (or the file's stem).

    Raises:
        ConfigError: If the id is unknown (naming the valid ids), the file cannot be read or
            is not TOML, a key is unknown or a value is out of range.
    """
    if isinstance(name, Mapping):
        return Scenario.from_dict(merge(name, overrides))
    if not isinstance(name, (str, Path)):
        raise ConfigError(
            f"scenario={short_repr(name)} must be a scenario id (one of "
            f"{', '.join(list_scenarios())}), a .toml path or a table"
        )
    data = _parse(name)
    return Scenario.from_dict(merge(data, overrides))


def _parse(name: str | Path) -> dict[str, Any]:
    """The TOML document of library id or file ``name``, with ``name`` defaulting to its id."""
    text, stem = _scenario_text(name)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"scenario {str(name)!r}: invalid TOML: {exc}") from None
    data.setdefault("name", stem)
    return data


def _scenario_text(name: str | Path) -> tuple[str, str]:
    """The text and id of library scenario ``name`` or of the ``.toml`` file at ``name``."""
    if isinstance(name, str) and name in list_scenarios():
        return (_library() / f"{name}.toml").read_text(encoding="utf-8"), name
    path = Path(name)
    if path.suffix != ".toml":
        raise ConfigError(
            f"scenario={str(name)!r} is unknown; valid: "
            f"{', '.join(list_scenarios())} or the path of a .toml file"
        )
    try:
        return path.read_text(encoding="utf-8"), path.stem
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"scenario file {str(name)!r} cannot be read: {exc}") from None
