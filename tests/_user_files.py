"""A new user's files, shared by the tests of issue 19: a controller class and a spec file.

``MY_CTL`` is the README's ten-line controller (plus ``Hold``: SB3's ``predict`` shape and
nothing else); ``MY_PID`` a spec file of the ``pid`` type with one gain of its own.
"""

from __future__ import annotations

from pathlib import Path

MY_CTL = '''
from closedloop.controllers import Controller


class MyController(Controller):
    """Integral action on the ECAP error: 0.05 mA per µV per second."""

    def current_ma(self, obs):
        error_uv = obs.target_uv - obs.ecap_uv[0]
        return obs.current_ma[0] + 0.05 * error_uv * self.context.dt_s


class Hold:
    """SB3's predict shape and nothing else: hold the current (incremental action 0)."""

    name = "hold"

    def predict(self, obs, state=None, episode_start=None, deterministic=True):
        import numpy as np

        return np.zeros(1, np.float32), state
'''

MY_PID = """name = "my-pid"
controller = "pid"
[params]
kp_ma_per_uv = 0.01
"""


def write_user_files(folder: Path, module: str = "my_ctl") -> Path:
    """Write ``<module>.py`` (``MY_CTL``) and ``my-pid.toml`` into ``folder``; return it."""
    (folder / f"{module}.py").write_text(MY_CTL)
    (folder / "my-pid.toml").write_text(MY_PID)
    return folder
