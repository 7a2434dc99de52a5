"""The clinical loop aiming at max(target, k x the calibrated perception ECAP) (issue 22 study).

A baseline for the residual agents: the rule behind most of their gain on the patients whose
target sits at or below perception. Play it like any controller file::

    closedloop benchmark --controllers \
        clinical-loop,floor12=benchmarks/scripts/target_floor.py:Floor12

It changes the target the loop sees in the one-episode path (``current_ma``) and the batched
one (``_currents``) alike; overriding ``current_ma`` makes the benchmark play it one episode at
a time (slower, the same law). ``benchmarks/results/residual_rl.md`` has its figures.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from closedloop.controllers.clinical import ClinicalLoop


def perception_ecap_uv(context) -> float:
    """The calibrated ECAP at perception in the reference posture (µV)."""
    cal = context.calibration
    ref = next((p for p in cal.postures if p.posture == cal.reference_posture), cal.postures[0])
    return float(ref.perception_ecap_uv)


class TargetFloor(ClinicalLoop):
    """The clinical loop with the target raised to ``k`` x the perception ECAP where lower."""

    k = 1.2

    def reset_many(self, contexts) -> None:
        super().reset_many(contexts)
        self._floor_uv = np.array([self.k * perception_ecap_uv(c) for c in contexts])

    def _currents(self, obs, rows):
        x = np.array(obs, np.float64)
        h = self.context.history
        r = np.arange(x.shape[0]) if rows is None else np.asarray(rows)
        x[:, 3 * h] = np.maximum(x[:, 3 * h], self._floor_uv[r])
        return super()._currents(x, rows)

    def current_ma(self, obs):
        target = max(obs.target_uv, float(self._floor_uv[0]))
        return super().current_ma(dataclasses.replace(obs, target_uv=target))


class Floor12(TargetFloor):
    k = 1.2


class Floor15(TargetFloor):
    k = 1.5
