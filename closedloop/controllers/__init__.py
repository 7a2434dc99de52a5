"""Controllers behind one interface: SB3's ``predict`` plus ``reset(context)``.

Build one from a spec in ``agents/`` with :func:`make_controller`::

    from closedloop.controllers import ControlContext, make_controller

    ctl = make_controller("clinical-loop")
    ctl.reset(ControlContext.from_env(env.unwrapped.spec_.config, env.unwrapped.calibration,
                                      info["target_uv"]))
    action, state = ctl.predict(obs)

Open loop, P/PI/PID, the clinical loop, the ceiling and the adaptive inverse are batch controllers
(:class:`~closedloop.controllers.batch.BatchController`): one instance also plays N episodes at
once (``reset_many(contexts)``, ``predict_many(obs)``), bit for bit as N one-episode instances.
"""

from closedloop.controllers.adaptive import AdaptiveInverse, AdaptiveInverseParams
from closedloop.controllers.base import (
    ControlContext,
    Controller,
    GrowthPrior,
    Observation,
    SB3Policy,
)
from closedloop.controllers.batch import BatchController
from closedloop.controllers.ceiling import Ceiling, CeilingParams
from closedloop.controllers.clinical import ClinicalLoop, ClinicalLoopParams
from closedloop.controllers.mpc import MPC, MPCParams
from closedloop.controllers.open_loop import OpenLoop, OpenLoopParams
from closedloop.controllers.pid import PID, PIDCore, PIDParams
from closedloop.controllers.registry import (
    CONTROLLER_TYPES,
    AgentSpec,
    list_agents,
    load_agent_spec,
    make_controller,
)

__all__ = [
    "CONTROLLER_TYPES",
    "MPC",
    "PID",
    "AdaptiveInverse",
    "AdaptiveInverseParams",
    "AgentSpec",
    "BatchController",
    "Ceiling",
    "CeilingParams",
    "ClinicalLoop",
    "ClinicalLoopParams",
    "ControlContext",
    "Controller",
    "GrowthPrior",
    "MPCParams",
    "Observation",
    "OpenLoop",
    "OpenLoopParams",
    "PIDCore",
    "PIDParams",
    "SB3Policy",
    "list_agents",
    "load_agent_spec",
    "make_controller",
]
