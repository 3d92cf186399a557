"""The one place where lonja's settings reach Pyro5's global configuration.

Pyro5 reads every `PYRO_*` environment variable at import and raises on one it doesn't know, so lonja
imports it here first and turns that crash into a ConfigError that says which variable to remove.
"""

from __future__ import annotations

import logging
import os
import re
from types import ModuleType

from .errors import ConfigError
from .settings import Settings
from .tls import apply_tls

PYRO_HARD_LIMIT = 1024 * 1024 * 1024


def import_pyro() -> ModuleType:
    """Import Pyro5, or raise ConfigError naming the stray PYRO_* variable that stops it."""
    try:
        import Pyro5.api
        from .serializers import install_serializers
        install_serializers()
    except ValueError as exc:
        match = re.search(r"(PYRO_\w+)", str(exc))
        name = match.group(1).split("=")[0] if match else "a PYRO_* variable"
        raise ConfigError(f"Pyro5 refuses to start: {exc}. Remove or fix the environment variable {name} "
                          f"(lonja settings go in lonja.toml or LONJA_* variables)") from None
    return Pyro5.api


def apply_to_pyro(settings: Settings) -> None:
    """Set the Pyro5 configuration items that lonja owns from the effective settings."""
    pyro = import_pyro()
    cfg = pyro.config
    cfg.SERIALIZER = settings["client.serializer"]
    cfg.SERVERTYPE = "thread" if settings["service.servertype"] == "adaptive" else settings["service.servertype"]
    cfg.THREADPOOL_SIZE = settings["service.threads"]
    cfg.THREADPOOL_SIZE_MIN = min(cfg.THREADPOOL_SIZE_MIN, cfg.THREADPOOL_SIZE)
    # limits.max_message_size is what a lonja server accepts in a request, checked after decompression by
    # config.wire (which ignores this value). Pyro5's own check (compressed sizes) also covers answers and
    # what clients send: it stays a backstop at 1 GiB, so answers are not cut at the request limit and an
    # oversized request reaches the server, which answers "message too large (N > M)".
    cfg.MAX_MESSAGE_SIZE = max(settings["limits.max_message_size"], PYRO_HARD_LIMIT)
    cfg.COMPRESSION = settings["limits.compression"]
    cfg.NS_HOST = settings["ns.host"]
    cfg.NS_PORT = settings["ns.port"]
    cfg.HOST = settings["service.host"]
    cfg.SOCK_NODELAY = True
    apply_tls(settings, cfg)
    level = settings["log.level"].upper()
    # Pyro5 logs every failed connect at ERROR; lonja reports those itself, as one line.
    logging.getLogger("Pyro5").setLevel(level if level in ("DEBUG", "INFO") else "CRITICAL")
    logging.getLogger("lonja").setLevel(level)
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(name)s %(levelname)s: %(message)s")


def without_pyro_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """A copy of the environment minus PYRO_* variables (for child processes that must not inherit them)."""
    return {k: v for k, v in (environ or os.environ).items() if not k.startswith("PYRO_")}
