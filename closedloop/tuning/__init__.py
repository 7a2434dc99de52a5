"""Tuning on the training cohort, scored on validation patients, never the held-out test cohort.

* :mod:`~closedloop.tuning.controller`: a controller spec's gains (:func:`tune`, Nelder-Mead);
* :mod:`~closedloop.tuning.hpsearch`: an RL agent's hyperparameters (:func:`search`, optuna),
  over the space of :mod:`~closedloop.tuning.hpsearch_space`.

The names below are re-exported lazily (optuna and SB3 load only when a search runs).
"""

from closedloop._lazy import lazy_exports

_EXPORTS = {"tune": "controller", "TuningProblem": "controller", "search": "hpsearch"}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
