"""RL training: one command, reproducible, observable while it runs, resumable.

* :func:`train` (``closedloop train``) trains a stable-baselines3 / sb3-contrib agent from a spec
  in ``agents/rl/`` (:mod:`~closedloop.training.spec`) on the native vector env
  (:mod:`~closedloop.training.env`), with a progress bar, CSV and TensorBoard logs including the
  clinical metrics (:mod:`~closedloop.training.callbacks`), periodic checkpoints, resumption, a
  validation-cohort evaluation that keeps the best model, and a model card per saved model
  (:mod:`~closedloop.training.card`).
* :func:`load_trained` loads a saved model (or a run's best model) as a controller with its
  observation normalisation (:mod:`~closedloop.training.policy`), for
  :func:`closedloop.evaluation.run_episode` and the benchmark.

Example::

    from closedloop.training import load_trained, train

    result = train("ppo", "closedloop/ECAPTracking-v0", 500_000, "runs/train-ppo", seed=0)
    controller = load_trained(result.model_dir)

torch, stable-baselines3 and sb3-contrib are imported when a run starts, not by this package.
"""

from closedloop.training.policy import (
    ObsNormalizer,
    TrainedPolicy,
    TrainedPolicyFactory,
    load_trained,
)
from closedloop.training.run_config import TrainOptions, TrainResult
from closedloop.training.search_ranges import with_values
from closedloop.training.spec import (
    ALGORITHMS,
    RLAgentSpec,
    list_rl_agents,
    load_rl_spec,
    parse_rl_spec,
)
from closedloop.training.train import train

__all__ = [
    "ALGORITHMS",
    "ObsNormalizer",
    "RLAgentSpec",
    "TrainOptions",
    "TrainResult",
    "TrainedPolicy",
    "TrainedPolicyFactory",
    "list_rl_agents",
    "load_rl_spec",
    "load_trained",
    "parse_rl_spec",
    "train",
    "with_values",
]
