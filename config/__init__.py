"""lonja's settings: layered defaults, user file, environment and flags, applied to Pyro5."""

from .errors import ConfigError
from .pyro import apply_to_pyro, ensure_applied, import_pyro
from .settings import Settings, current_settings, install_settings, load_settings, parse_address
from .signals import stop_on_signals

__all__ = ["ConfigError", "Settings", "apply_to_pyro", "current_settings", "ensure_applied", "import_pyro",
           "install_settings", "load_settings", "parse_address", "stop_on_signals"]
