"""closedloop: research tools for closed-loop spinal cord stimulation with ECAP feedback.

Importing the package registers the Gymnasium environment suite (``envs/*.toml``), e.g.
``gymnasium.make("closedloop/ECAPTracking-v0")``; nothing else happens at import.
"""

from closedloop._config import ConfigError
from closedloop.envs import register_suite

__version__ = "0.1.0"
__all__ = ["ConfigError", "__version__", "register_suite"]

register_suite()
