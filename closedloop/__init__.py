"""closedloop: research tools for closed-loop spinal cord stimulation with ECAP feedback."""

from closedloop._config import ConfigError

__version__ = "0.1.0"
__all__ = ["ConfigError", "__version__"]
