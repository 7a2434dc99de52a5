"""Where a controller comes from: one text names it, and a picklable factory builds it.

Everything that takes controllers by name (``closedloop benchmark --controllers``,
``closedloop evaluate``, :class:`closedloop.benchmark.Suite`) resolves each reference with
:func:`resolve_controller`. A reference is, in this order:

* a registered name: a spec in ``agents/``, a trained policy of the agent zoo, or a name that an
  installed package registers in the entry-point group :data:`ENTRY_POINT_GROUP`;
* a spec file by path (``./my-pid.toml``; its ``controller =`` may itself be a ``module:Class``);
* ``module:Class`` or ``path/to/file.py:Class``: a class (or zero-argument function) whose
  instances have SB3's ``predict(obs, state, episode_start, deterministic)`` and, optionally,
  ``reset(context)`` (:class:`~closedloop.controllers.ControlContext`);
* a folder written by ``closedloop train`` (its ``best/`` model, else ``final/``), or a model
  folder itself.

``LABEL=REFERENCE`` gives the controller the row label ``LABEL`` (else: the spec's or card's
name, or the class's ``name`` attribute or class name).

A package registers its controllers in its ``pyproject.toml``::

    [project.entry-points."closedloop.controllers"]
    gsi = "mypackage.controllers:GainScheduledIntegrator"

The factories (:class:`ObjectRef`, :class:`SpecFile`, and
:class:`~closedloop.training.TrainedPolicyFactory`) are picklable, so worker processes build
their own controllers; each has a ``source_id`` that names it in a run folder's episode keys.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from closedloop._config import ConfigError, short_repr
from closedloop.controllers.base import Controller
from closedloop.controllers.objects import check_controller, load_object, source_id
from closedloop.controllers.registry import list_agents, make_controller, read_spec_file
from closedloop.training.policy import TrainedPolicyFactory, model_dir, zoo_policies

ENTRY_POINT_GROUP = "closedloop.controllers"
"""The entry-point group in which installed packages register controllers by name."""
FORMS = (
    "a registered name",
    "a spec file (path/to/spec.toml)",
    "module:Class",
    "path/to/file.py:Class",
    "a folder written by closedloop train",
)
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")


def plugin_controllers() -> dict[str, str]:
    """Controllers registered by installed packages: name -> ``module:attr``."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def registered_names() -> list[str]:
    """Every name a reference may use: agent specs, zoo policies, then plugins (first wins)."""
    names = list_agents()
    names += [z for z in zoo_policies() if z not in names]
    return names + [p for p in plugin_controllers() if p not in names]


@dataclasses.dataclass(frozen=True)
class ObjectRef:
    """A picklable factory: import ``ref`` (``module:Class`` or ``file.py:Class``) and call it.

    Attributes:
        ref: ``module:attr``, or an absolute ``path/to/file.py:attr``.
    """

    ref: str

    @property
    def source_id(self) -> str:
        """Names the source in episode keys."""
        return f"object:{self.ref}"

    def __call__(self) -> Any:
        """A new controller (the object called with no arguments)."""
        obj = load_object(self.ref)
        if not callable(obj):
            raise ConfigError(
                f"controller={self.ref!r} is a {type(obj).__name__}, not a class "
                "or a zero-argument function"
            )
        try:
            built = obj()
        except TypeError as exc:
            raise ConfigError(
                f"controller={self.ref!r} cannot be built with no arguments "
                f"({exc}); give its parameters in a spec file: controller = "
                f'"{self.ref}" with a [params] table'
            ) from None
        return check_controller(built, f"controller={self.ref!r}")


@dataclasses.dataclass(frozen=True)
class SpecFile:
    """A picklable factory of the controller a spec file describes.

    Attributes:
        path: Absolute path of the ``.toml`` spec.
    """

    path: str

    @property
    def source_id(self) -> str:
        """Names the source in episode keys."""
        return f"spec:{self.path}"

    def spec(self) -> Any:
        """The parsed, validated :class:`~closedloop.controllers.registry.AgentSpec`."""
        return read_spec_file(Path(self.path))

    def __call__(self) -> Any:
        """A new controller of the spec."""
        return self.spec().build()


def _label(obj: Any, fallback: str) -> str:
    """The row label of a class or function: its own ``name`` attribute, else its name."""
    name = getattr(obj, "name", None)
    if isinstance(name, str) and name and name != Controller.name:
        return name
    return getattr(obj, "__name__", fallback)


def _object_source(ref: str, where: str) -> tuple[str, ObjectRef]:
    """Resolve ``module:Class`` / ``file.py:Class``; build one instance to check it."""
    module_part, _, attr = ref.rpartition(":")
    if module_part.endswith(".py"):
        ref = f"{Path(module_part).expanduser().resolve()}:{attr}"
    factory = ObjectRef(ref)
    obj = load_object(ref, where)
    check_controller(factory(), where)
    return _label(obj, attr), factory


def _folder_source(path: Path, where: str) -> tuple[str, Any]:
    """Resolve a ``closedloop train`` run folder or model folder.

    The label is the run folder's name (``runs/ppo/best`` and ``runs/ppo`` are ``ppo``).
    """
    try:
        model_dir(path)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    path = path.resolve()
    label = path.parent.name if path.name in ("best", "final") else path.name
    return label, TrainedPolicyFactory(str(path))


def resolve_controller(ref: str, where: str = "controllers") -> tuple[str, str | Callable]:
    """Resolve one controller reference to ``(label, source)``.

    Args:
        ref: A reference in one of the forms of the module docstring, optionally
            ``LABEL=REFERENCE``.
        where: The argument's name, for error messages.

    Returns:
        The row label and the source: a spec name (str, for ``make_controller``) or a picklable
        zero-argument factory.

    Raises:
        ConfigError: If ``ref`` matches no form (the message lists the registered names and the
            forms), or the file, module, class or folder it names is unusable.
    """
    if not isinstance(ref, str) or not ref.strip():
        raise ConfigError(f"{where}={short_repr(ref)} must be a non-empty string")
    ref = ref.strip()
    label, sep, rest = ref.partition("=")
    if sep and _LABEL.fullmatch(label) and rest:
        return label, resolve_controller(rest, where)[1]

    if ref in list_agents():
        return ref, ref
    zoo, plugins = zoo_policies(), plugin_controllers()
    if ref in zoo:
        return ref, TrainedPolicyFactory(str(zoo[ref]))
    if ref in plugins:
        return ref, _object_source(plugins[ref], f"{where} (entry point {ref!r})")[1]
    path = Path(ref).expanduser()
    if ref.endswith(".toml"):
        if not path.is_file():
            raise ConfigError(f"{where}={ref!r}: no such spec file")
        factory = SpecFile(str(path.resolve()))
        return factory.spec().name, factory
    if ":" in ref and not path.exists():
        return _object_source(ref, where)
    if path.is_dir():
        return _folder_source(path, f"{where}={ref!r}")
    raise ConfigError(
        f"{where}={ref!r} is unknown; valid: one of {', '.join(FORMS)}. "
        f"Registered names: {', '.join(registered_names())}"
    )


def resolve_controllers(
    refs: Iterable[str], where: str = "controllers", expand_all: bool = True
) -> dict[str, str | Callable]:
    """Resolve references to ``{label: source}``, in order; ``all`` = every shipped controller.

    ``all`` expands to every agent spec and zoo policy (not plugins: name those). A label
    that two different references give is an error (rename one with ``LABEL=REFERENCE``);
    the same reference twice counts once.
    """
    out: dict[str, str | Callable] = {}
    for i, ref in enumerate(refs):
        if expand_all and ref == "all":
            pairs = [
                resolve_controller(n, where)
                for n in list_agents() + [z for z in zoo_policies() if z not in list_agents()]
            ]
        else:
            try:
                pairs = [resolve_controller(ref, f"{where}[{i}]")]
            except ConfigError as exc:
                if "is unknown" not in str(exc) or not expand_all:
                    raise
                raise ConfigError(f"{exc}; or all (every shipped controller)") from None
        for label, source in pairs:
            if label in out and source_id(out[label]) != source_id(source):
                raise ConfigError(
                    f"{where}: two controllers are labelled {label!r} "
                    f"({source_id(out[label])} and {source_id(source)}); name "
                    "one with LABEL=REFERENCE"
                )
            out.setdefault(label, source)
    return out


def build_controller(source: str | Callable) -> Any:
    """A new controller from a resolved source: a spec name, or a zero-argument factory."""
    if isinstance(source, str):
        return make_controller(source)
    return source()
