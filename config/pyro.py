"""The one place where lonja's settings reach Pyro5's global configuration.

Pyro5's configuration is process-wide, so it is written here only: by the `lonja` command once its
settings are known (`apply_to_pyro`), or, in a program that uses the client library without the
command, by the first `connect()` (`ensure_applied`), which sets only what lonja's own connections need
(SOCK_NODELAY, TLS, the size backstop) and leaves the program's own Pyro5 choices alone.

Pyro5 reads every `PYRO_*` environment variable at import and raises on one it doesn't know, so lonja
imports it here first and turns that crash into a ConfigError that says which variable to remove.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from .errors import ConfigError
from .settings import Settings
from .tls import apply_tls

PYRO_HARD_LIMIT = 1024 * 1024 * 1024


def import_pyro() -> ModuleType:
    """Import Pyro5 (its configuration, with lonja's serializers installed), or raise ConfigError naming
    the stray PYRO_* variable that stops it. The rest of Pyro5 is imported by the modules that use it."""
    try:
        import Pyro5

        from .serializers import install_serializers
        install_serializers()
    except ValueError as exc:
        match = re.search(r"(PYRO_\w+)", str(exc))
        name = match.group(1).split("=")[0] if match else "a PYRO_* variable"
        raise ConfigError(f"Pyro5 refuses to start: {exc}. Remove or fix the environment variable {name} "
                          f"(lonja settings go in lonja.toml or LONJA_* variables)") from None
    return Pyro5


_applied: Settings | None = None
_applying = threading.Lock()


def apply_to_pyro(settings: Settings) -> None:
    """The `lonja` command's set-up: every Pyro5 item lonja owns, the log levels and the log format."""
    global _applied
    with _applying:
        cfg = import_pyro().config
        _configure_connections(settings, cfg)
        _configure_process(settings, cfg)
        _applied = settings
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(name)s %(levelname)s: %(message)s")


def ensure_applied(settings: Settings) -> None:
    """A library's set-up, once per process (the first settings win): only what lonja's own connections
    need and cannot set per connection (SOCK_NODELAY, TLS, the size backstop). The program's own
    choices (its default serializer, server type, logging) are left alone."""
    global _applied
    if _applied is None:
        with _applying:
            if _applied is None:
                _configure_connections(settings, import_pyro().config)
                _applied = settings


def _configure_connections(settings: Settings, cfg: Any) -> None:
    # limits.max_message_size is what a lonja server accepts in a request, checked after decompression by
    # config.wire (which ignores this value). Pyro5's own check (compressed sizes) also covers answers and
    # what clients send: it stays a backstop at 1 GiB, so answers are not cut at the request limit and an
    # oversized request reaches the server, which answers "message too large (N > M)".
    cfg.MAX_MESSAGE_SIZE = max(settings["limits.max_message_size"], PYRO_HARD_LIMIT)
    cfg.SOCK_NODELAY = True
    apply_tls(settings, cfg)


def _configure_process(settings: Settings, cfg: Any) -> None:
    cfg.SERIALIZER = settings["client.serializer"]
    cfg.SERVERTYPE = "thread" if settings["service.servertype"] == "adaptive" else settings["service.servertype"]
    cfg.THREADPOOL_SIZE = settings["service.threads"]
    cfg.THREADPOOL_SIZE_MIN = min(cfg.THREADPOOL_SIZE_MIN, cfg.THREADPOOL_SIZE)
    cfg.COMPRESSION = settings["limits.compression"]
    cfg.NS_HOST = settings["ns.host"]
    cfg.NS_PORT = settings["ns.port"]
    cfg.HOST = settings["service.host"]
    level = settings["log.level"].upper()
    # Pyro5 logs every failed connect at ERROR; lonja reports those itself, as one line.
    logging.getLogger("Pyro5").setLevel(level if level in ("DEBUG", "INFO") else "CRITICAL")
    logging.getLogger("lonja").setLevel(level)


@contextmanager
def transport_chosen(servertype: str) -> Iterator[None]:
    """Inside the block, Pyro5 builds daemons on its `servertype` transport ("thread" or "multiplex").

    Pyro5 picks a new daemon's transport from its process-wide config, with no argument for it, so the
    item is set for the block only (under the lock that guards every write here) and put back after.
    """
    with _applying:
        cfg = import_pyro().config
        previous, cfg.SERVERTYPE = cfg.SERVERTYPE, servertype
        try:
            yield
        finally:
            cfg.SERVERTYPE = previous


def without_pyro_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """A copy of the environment minus PYRO_* variables (for child processes that must not inherit them)."""
    return {k: v for k, v in (environ or os.environ).items() if not k.startswith("PYRO_")}
