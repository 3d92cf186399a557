"""lonja's settings: layered defaults, user file, environment and flags, applied to Pyro5."""

from .errors import ConfigError
from .pyro import apply_to_pyro, ensure_applied, import_pyro
from .settings import (
    Settings,
    current_settings,
    format_address,
    install_settings,
    load_settings,
    parse_address,
    parse_addresses,
)
from .signals import stop_on_signals

__all__ = ["ConfigError", "Settings", "apply_to_pyro", "current_settings", "ensure_applied", "format_address",
           "import_pyro", "install_settings", "load_settings", "parse_address", "parse_addresses", "stop_on_signals"]
