"""TLS for every lonja process: the `[tls]` settings applied to Pyro5's SSL configuration.

One setting (`tls.enabled`) turns it on for name servers, services and clients alike. A process uses
`tls.cert`/`tls.key` as its server certificate when it serves and as its client certificate when it
calls (mutual TLS: `tls.require_client_cert` on the servers). Peers are checked against `tls.ca`.
`lonja certs init DIR` makes a development CA and certificates to try it with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import ConfigError
from .settings import Settings


def apply_tls(settings: Settings, cfg: Any) -> None:
    """Set Pyro5's SSL items from `[tls]`, or ConfigError naming the setting whose file is missing."""
    cfg.SSL = settings["tls.enabled"]
    if not cfg.SSL:
        return
    cert, key, ca = (_file(settings, name) for name in ("tls.cert", "tls.key", "tls.ca"))
    if not ca:
        raise ConfigError(f"tls.enabled is on but tls.ca is empty (from {settings.source('tls.ca')}): "
                          f"name the CA certificate that peers are checked against")
    if bool(cert) != bool(key):
        raise ConfigError("tls.cert and tls.key go together: set both or neither")
    cfg.SSL_CACERTS = ca
    cfg.SSL_SERVERCERT = cfg.SSL_CLIENTCERT = cert
    cfg.SSL_SERVERKEY = cfg.SSL_CLIENTKEY = key
    cfg.SSL_REQUIRECLIENTCERT = settings["tls.require_client_cert"]


def _file(settings: Settings, name: str) -> str:
    value = settings[name]
    if not value:
        return ""
    path = Path(value).expanduser().resolve()
    if not path.is_file():
        raise ConfigError(f"{name} names {path} (from {settings.source(name)}), which is not a readable file")
    return str(path)
