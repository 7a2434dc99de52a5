"""closedloop: research tools for closed-loop spinal cord stimulation with ECAP feedback.

Importing the package registers the Gymnasium environment suite (``envs/*.toml``), e.g.
``gymnasium.make("closedloop/ECAPTracking-v0")``, and makes numba's on-disk caches of the
package's compiled functions depend on every package module they import
(:mod:`closedloop._jit_cache`); nothing else happens at import.
"""

from closedloop import _jit_cache  # noqa: F401  (first: numba caches see every imported module)
from closedloop._config import ConfigError
from closedloop.envs import register_suite

__version__ = "0.1.0"
__all__ = ["ConfigError", "__version__", "register_suite"]

register_suite()
