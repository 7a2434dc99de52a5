"""Controller specs from ``agents/*.toml`` and the controller types they name.

A spec is one TOML file::

    name = "pi"                           # unique; by convention the file's stem
    description = "PI on the ECAP error"
    controller = "pid"                    # a key of CONTROLLER_TYPES
    [params]                              # fields of that type's params dataclass
    ki_ma_per_uv_s = 0.25
    [tuning]                              # optional: how the gains were tuned (budget, cohort)
    budget = 40

Example:
    >>> from closedloop.controllers.registry import make_controller
    >>> pi = make_controller("pi", ki_ma_per_uv_s=0.3)   # spec defaults, then overrides

Every error is a :class:`~closedloop.ConfigError` that names the offending key and its valid
choices or range.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from closedloop._config import ConfigError, check_table, from_dict
from closedloop._specdirs import spec_dir
from closedloop.controllers.adaptive import AdaptiveInverse
from closedloop.controllers.base import Controller
from closedloop.controllers.ceiling import Ceiling
from closedloop.controllers.clinical import ClinicalLoop
from closedloop.controllers.mpc import MPC
from closedloop.controllers.open_loop import OpenLoop
from closedloop.controllers.pid import PID

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CONTROLLER_TYPES: Mapping[str, type[Controller]] = {
    cls.name: cls for cls in (OpenLoop, PID, ClinicalLoop, Ceiling, AdaptiveInverse, MPC)}
"""Controller type name -> class; each class has a frozen ``params_type`` dataclass."""

SPEC_KEYS = ("name", "description", "controller", "params", "tuning")


@dataclasses.dataclass(frozen=True)
class AgentSpec:
    """One controller configuration.

    Attributes:
        name: Unique name (``make_controller(name)``).
        description: One paragraph for tables and reports.
        controller: Key of :data:`CONTROLLER_TYPES`.
        params: The validated params dataclass of that type.
        tuning: The ``[tuning]`` record of an auto-tuned spec (budget, cohort, objective), or
            None; kept as written, for provenance.
    """

    name: str
    description: str
    controller: str
    params: Any
    tuning: Mapping[str, Any] | None = None

    def build(self) -> Controller:
        """A new controller of this configuration."""
        return CONTROLLER_TYPES[self.controller](self.params)


def parse_agent_spec(doc: Mapping[str, Any], where: str = "spec") -> AgentSpec:
    """Validate a parsed spec document.

    Args:
        doc: The spec's keys (``name``, ``description``, ``controller``, ``params`` and the
            optional ``tuning`` record).
        where: Where it came from, for error messages.

    Raises:
        ConfigError: On unknown or missing keys, wrong types, an unknown controller type or
            parameter, or a parameter out of range.
    """
    check_table(doc, SPEC_KEYS, where)
    for key in ("name", "controller"):
        if key not in doc:
            raise ConfigError(f"{where}: missing key {key!r} (a string)")
        if not isinstance(doc[key], str) or not doc[key]:
            raise ConfigError(f"{where}: {key}={doc[key]!r} must be a non-empty string")
    if not isinstance(doc.get("description", ""), str):
        raise ConfigError(f"{where}: description={doc['description']!r} must be a string")
    kind = doc["controller"]
    if kind not in CONTROLLER_TYPES:
        raise ConfigError(f"{where}: controller={kind!r} is unknown; valid: "
                          f"{', '.join(CONTROLLER_TYPES)}")
    params, tuning = doc.get("params", {}), doc.get("tuning")
    if not isinstance(params, Mapping):
        raise ConfigError(f"{where}: params={params!r} must be a table of parameters")
    if tuning is not None and not isinstance(tuning, Mapping):
        raise ConfigError(f"{where}: tuning={tuning!r} must be a table (the tuning record)")
    cls = CONTROLLER_TYPES[kind].params_type
    return AgentSpec(doc["name"], str(doc.get("description", "")).strip(), kind,
                     from_dict(cls, params, f"{where} [params]"),
                     None if tuning is None else dict(tuning))


def _spec_files(folder: Path | None = None) -> dict[str, Path]:
    """Spec files in ``agents/`` (or ``folder``) by spec name (read from each file)."""
    folder = spec_dir("agents") if folder is None else folder
    found: dict[str, Path] = {}
    for path in sorted(folder.glob("*.toml")):
        doc = _read(path)
        name = doc.get("name") if isinstance(doc.get("name"), str) else path.stem
        if not name:
            raise ConfigError(f"{path.name}: name='' must be a non-empty string")
        if name in found:
            raise ConfigError(f"{path.name}: duplicate agent name {name!r} "
                              f"(also in {found[name].name})")
        found[name] = path
    return found


def _read(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path.name}: malformed TOML: {exc}") from exc


def list_agents(folder: Path | None = None) -> list[str]:
    """Names of the controller specs in ``agents/`` (or ``folder``), sorted."""
    return sorted(_spec_files(folder))


def load_agent_spec(name: str, folder: Path | None = None) -> AgentSpec:
    """The spec called ``name`` from ``agents/`` (or ``folder``).

    Raises:
        ConfigError: If no spec has that name (the message lists the valid names), or the spec
            is malformed.
    """
    files = _spec_files(folder)
    if not isinstance(name, str) or name not in files:
        raise ConfigError(f"controller={name!r} is unknown; valid: {', '.join(sorted(files))}")
    return parse_agent_spec(_read(files[name]), files[name].name)


def make_controller(name_or_spec: str | AgentSpec | Mapping[str, Any],
                    **overrides: Any) -> Controller:
    """A new controller from a spec name, an :class:`AgentSpec` or a spec document.

    Args:
        name_or_spec: A name in ``agents/``, an :class:`AgentSpec`, or a mapping with the keys
            of a spec file.
        **overrides: Parameter values replacing the spec's (validated the same way).

    Returns:
        The controller; call ``reset(context)`` before playing it.
    """
    if isinstance(name_or_spec, str):
        spec = load_agent_spec(name_or_spec)
    elif isinstance(name_or_spec, AgentSpec):
        spec = name_or_spec
    else:
        spec = parse_agent_spec(name_or_spec)
    if overrides:
        merged = {**dataclasses.asdict(spec.params), **overrides}
        params = from_dict(type(spec.params), merged, f"overrides of {spec.name}")
        spec = dataclasses.replace(spec, params=params)
    return spec.build()
