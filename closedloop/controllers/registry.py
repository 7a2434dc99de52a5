"""Controller specs from ``agents/*.toml`` and the controller types they name.

A spec is one TOML file::

    name = "pi"                           # unique; by convention the file's stem
    description = "PI on the ECAP error"
    controller = "pid"                    # a key of CONTROLLER_TYPES, or module:Class
    [params]                              # fields of that type's params dataclass
    ki_ma_per_uv_s = 0.25
    [tuning]                              # optional: how the gains were tuned (budget, cohort)
    budget = 40

``controller`` may also name a class of your own: ``"mypackage.ctl:MyController"`` or
``"my_ctl.py:MyController"`` (a path relative to the spec file). With a ``params_type``
dataclass, the class is built as ``Class(params_type(**params))`` (each value validated); without
one, as ``Class(**params)``.

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
from closedloop.controllers.base import CONTROLLER_TYPES, Controller
from closedloop.controllers.objects import check_controller, load_object

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_INFRASTRUCTURE = ("registry", "sources")
"""Modules of the package that hold no controller type (and import this one)."""


def discover() -> Mapping[str, type[Controller]]:
    """Import every module of :mod:`closedloop.controllers`; each controller class registers.

    A controller class that sets its own ``name`` and ``params_type`` lands in
    :data:`~closedloop.controllers.base.CONTROLLER_TYPES` when its module is imported
    (:meth:`Controller.__init_subclass__ <closedloop.controllers.base.Controller>`), so a new
    module here needs no edit elsewhere.

    Returns:
        :data:`~closedloop.controllers.base.CONTROLLER_TYPES`.
    """
    import importlib
    import pkgutil

    package = sys.modules["closedloop.controllers"]
    for info in pkgutil.iter_modules(package.__path__):
        if info.name not in _INFRASTRUCTURE:
            importlib.import_module(f"closedloop.controllers.{info.name}")
    return CONTROLLER_TYPES


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
        cls = controller_type(self.controller, f"spec {self.name!r}")
        if getattr(cls, "params_type", None) is None and isinstance(self.params, Mapping):
            try:
                return check_controller(cls(**self.params), f"spec {self.name!r}")
            except TypeError as exc:
                raise ConfigError(f"spec {self.name!r} [params]: {exc}") from None
        return check_controller(cls(self.params), f"spec {self.name!r}")


def controller_type(kind: str, where: str = "spec") -> type:
    """The class a spec's ``controller`` names: a key of :data:`CONTROLLER_TYPES` or a reference.

    A reference is ``module:Class`` or ``path/to/file.py:Class`` (an absolute path, or relative
    to the working directory; :func:`parse_agent_spec` makes a spec file's relative paths
    absolute).
    """
    types_ = CONTROLLER_TYPES if kind in CONTROLLER_TYPES else discover()
    if kind in types_:
        return types_[kind]
    if ":" not in kind:
        raise ConfigError(
            f"{where}: controller={kind!r} is unknown; valid: "
            f"{', '.join(sorted(types_))}, or module:Class / file.py:Class"
        )
    cls = load_object(kind, f"{where}: controller")
    if not callable(cls):
        raise ConfigError(f"{where}: controller={kind!r} is a {type(cls).__name__}, not a class")
    return cls


def parse_agent_spec(
    doc: Mapping[str, Any], where: str = "spec", base_dir: Path | None = None
) -> AgentSpec:
    """Validate a parsed spec document.

    Args:
        doc: The spec's keys (``name``, ``description``, ``controller``, ``params`` and the
            optional ``tuning`` record).
        where: Where it came from, for error messages.
        base_dir: The spec file's folder: a ``controller = "file.py:Class"`` is relative to it.

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
    module_part, _, attr = kind.rpartition(":")
    if module_part.endswith(".py") and base_dir is not None:
        kind = f"{(base_dir / Path(module_part).expanduser()).resolve()}:{attr}"
    cls = controller_type(kind, where)
    params, tuning = doc.get("params", {}), doc.get("tuning")
    if not isinstance(params, Mapping):
        raise ConfigError(f"{where}: params={params!r} must be a table of parameters")
    if tuning is not None and not isinstance(tuning, Mapping):
        raise ConfigError(f"{where}: tuning={tuning!r} must be a table (the tuning record)")
    params_type = getattr(cls, "params_type", None)
    return AgentSpec(
        doc["name"],
        str(doc.get("description", "")).strip(),
        kind,
        dict(params)
        if params_type is None
        else from_dict(params_type, params, f"{where} [params]"),
        None if tuning is None else dict(tuning),
    )


def read_spec_file(path: Path) -> AgentSpec:
    """Parse and validate the spec file at ``path`` (its ``name`` defaults to the file's stem).

    Raises:
        ConfigError: If the file is missing, is not TOML, or is not a valid spec.
    """
    if not path.is_file():
        raise ConfigError(f"spec file {str(path)!r} does not exist")
    doc = _read(path)
    doc.setdefault("name", path.stem)
    return parse_agent_spec(doc, path.name, path.parent)


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
            raise ConfigError(
                f"{path.name}: duplicate agent name {name!r} (also in {found[name].name})"
            )
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
    return parse_agent_spec(_read(files[name]), files[name].name, files[name].parent)


def make_controller(
    name_or_spec: str | AgentSpec | Mapping[str, Any], **overrides: Any
) -> Controller:
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
        if not dataclasses.is_dataclass(spec.params):
            params = {**spec.params, **overrides}
            return dataclasses.replace(spec, params=params).build()
        merged = {**dataclasses.asdict(spec.params), **overrides}
        params = from_dict(type(spec.params), merged, f"overrides of {spec.name}")
        spec = dataclasses.replace(spec, params=params)
    return spec.build()
