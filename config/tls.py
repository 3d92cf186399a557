"""TLS for every lonja process: the `[tls]` settings applied to Pyro5's SSL configuration.

One setting (`tls.enabled`) turns it on for name servers, services and clients alike. A process uses
`tls.cert`/`tls.key` as its server certificate when it serves and as its client certificate when it
calls (mutual TLS: `tls.require_client_cert` on the servers). `lonja certs init DIR` makes a development
CA and certificates to try it with. Relative paths are taken from the current directory (like `data.dir`).

`apply_tls` checks the files at once (missing, unreadable, not PEM, an encrypted key, a key that does not
match its certificate: a ConfigError naming the setting and the path) and builds the TLS contexts then.
It also takes over Pyro5's `socketutil.get_ssl_context` for the calls Pyro5 makes with these settings,
because Pyro5's own version:
- caches its contexts for the life of the process, so settings applied again later would be ignored;
- asks for a key's password on the terminal, which would hang a server;
- when serving without a certificate, fails deep inside the socket code ("check_hostname requires
  server_hostname"); here that is a ConfigError naming tls.cert;
- adds the system's trusted CAs to `SSL_CACERTS`: under mutual TLS a server would accept a client
  certificate from any public CA. Here `tls.ca`, when set, is the only CA trusted (servers and clients);
  empty, clients trust the system's CAs and servers cannot require client certificates.
Calls with any other arguments (someone calling get_ssl_context by hand) go to Pyro5's own function.
"""

from __future__ import annotations

import os
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .settings import Settings

_PYRO_ITEMS = ("SSL_SERVERCERT", "SSL_SERVERKEY", "SSL_CLIENTCERT", "SSL_CLIENTKEY", "SSL_CACERTS")


class TlsContexts:
    """The TLS contexts of one process: `server` (None without a certificate) and `client`."""

    def __init__(self, cert: str, key: str, ca: str, require_client_cert: bool) -> None:
        self.cert, self.key, self.ca, self.require_client_cert = cert, key, ca, require_client_cert
        self.client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, **_ca_arguments(ca))
        self.server: ssl.SSLContext | None = None
        if cert:
            self.client.load_cert_chain(cert, key or None, password=_no_password)
            self.server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.server.load_cert_chain(cert, key or None, password=_no_password)
            if ca:
                self.server.load_verify_locations(**_ca_arguments(ca))
            self.server.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_NONE

    def pyro_arguments(self) -> tuple[dict[str, str], dict[str, str]]:
        """The keyword arguments Pyro5 passes to get_ssl_context as a server and as a client."""
        server = {"servercert": self.cert, "serverkey": self.key, "keypassword": "", "cacerts": self.ca}
        client = {"clientcert": self.cert, "clientkey": self.key, "keypassword": "", "cacerts": self.ca}
        return server, client


def apply_tls(settings: Settings, cfg: Any) -> TlsContexts | None:
    """Set Pyro5's SSL items on `cfg` from `[tls]`; ConfigError naming the setting and file that is wrong.

    Returns the contexts (None when TLS is off). When `cfg` is Pyro5's own config, they are the ones
    Pyro5's servers and proxies use from now on.
    """
    contexts = _contexts(settings) if settings["tls.enabled"] else None
    cfg.SSL = contexts is not None
    for item in _PYRO_ITEMS:
        setattr(cfg, item, "")
    cfg.SSL_SERVERKEYPASSWD = cfg.SSL_CLIENTKEYPASSWD = ""   # lonja's keys are unencrypted: never prompt
    cfg.SSL_REQUIRECLIENTCERT = bool(contexts and contexts.require_client_cert)
    if contexts:
        cfg.SSL_SERVERCERT = cfg.SSL_CLIENTCERT = contexts.cert
        cfg.SSL_SERVERKEY = cfg.SSL_CLIENTKEY = contexts.key
        cfg.SSL_CACERTS = contexts.ca
    if _is_pyro_config(cfg):
        _install(contexts)
    return contexts


def _contexts(settings: Settings) -> TlsContexts:
    cert = _path(settings, "tls.cert")
    key = _path(settings, "tls.key")
    ca = _path(settings, "tls.ca", directory_ok=True)
    require = settings["tls.require_client_cert"]
    if key and not cert:
        raise ConfigError(f"tls.key is set ({settings.source('tls.key')}) but tls.cert is empty: "
                          f"set tls.cert to the certificate that goes with it")
    if require and not ca:
        raise ConfigError(f"tls.require_client_cert is on ({settings.source('tls.require_client_cert')}) but "
                          f"tls.ca is empty: set tls.ca to the CA certificate that signs the client certificates")
    if cert:
        text = _text(settings, "tls.cert", cert)
        if "-----BEGIN CERTIFICATE-----" not in text:
            raise ConfigError(_where(settings, "tls.cert", cert) + " holds no PEM certificate "
                              "(-----BEGIN CERTIFICATE-----)")
        key_text = _text(settings, "tls.key", key) if key else text
        if "PRIVATE KEY-----" not in key_text:
            raise ConfigError(_where(settings, "tls.key", key) + " holds no PEM private key" if key else
                              _where(settings, "tls.cert", cert) + " has no private key in it: set tls.key")
        if "ENCRYPTED" in key_text:
            raise ConfigError(_where(settings, "tls.key" if key else "tls.cert", key or cert) +
                              " holds an encrypted private key: lonja needs it unencrypted "
                              "(e.g. `openssl pkey -in KEY -out KEY.plain`) and readable only by its user")
    if ca and os.path.isfile(ca) and "-----BEGIN CERTIFICATE-----" not in _text(settings, "tls.ca", ca):
        raise ConfigError(_where(settings, "tls.ca", ca) + " holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
    try:
        return TlsContexts(cert, key, ca, require)
    except (ssl.SSLError, OSError, _PasswordNeeded) as exc:
        reason = getattr(exc, "reason", None) or str(exc)
        if reason == "KEY_VALUES_MISMATCH":
            raise ConfigError(f"tls.key {key or cert} is not the private key of tls.cert {cert}: "
                              f"set both from the same pair (e.g. server.pem with server.key)") from None
        raise ConfigError(f"cannot use tls.cert {cert or '(none)'}, tls.key {key or '(none)'} and tls.ca "
                          f"{ca or '(system CAs)'}: {reason}") from None


def _path(settings: Settings, name: str, directory_ok: bool = False) -> str:
    """The absolute path a file setting names ("" when empty); ConfigError if it is missing or unreadable."""
    value = settings[name]
    if not value:
        return ""
    path = Path(value).expanduser().resolve()
    if directory_ok and path.is_dir():
        if not os.access(path, os.R_OK | os.X_OK):
            raise ConfigError(_where(settings, name, str(path)) + " is a directory this user may not read")
        return str(path)
    if not path.exists():
        raise ConfigError(_where(settings, name, str(path)) + " does not exist" +
                          ("" if Path(value).expanduser().is_absolute() else
                           f" (relative paths are taken from the current directory, {Path.cwd()})"))
    if not path.is_file():
        raise ConfigError(_where(settings, name, str(path)) + " is not a file")
    if not os.access(path, os.R_OK):
        raise ConfigError(_where(settings, name, str(path)) + " is not readable by this user")
    return str(path)


def _text(settings: Settings, name: str, path: str) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError as exc:
        raise ConfigError(_where(settings, name, path) + f" cannot be read: {exc.strerror or exc}") from None


def _where(settings: Settings, name: str, path: str) -> str:
    return f"{name} ({settings.source(name)}): {path}"


def _ca_arguments(ca: str) -> dict[str, str]:
    if not ca:
        return {}
    return {"capath": ca} if os.path.isdir(ca) else {"cafile": ca}


class _PasswordNeeded(Exception):
    def __str__(self) -> str:
        return "the private key is encrypted; lonja needs it unencrypted"


def _no_password() -> str:
    raise _PasswordNeeded()


# Pyro5's get_ssl_context, taken over while lonja's settings are applied to Pyro5's config.
_lock = threading.Lock()
_active: TlsContexts | None = None
_original: Callable[..., ssl.SSLContext] | None = None
NO_SERVER_CERTIFICATE = ("tls.enabled is on but tls.cert is empty: a name server or service host needs a "
                         "certificate to serve TLS (set tls.cert and tls.key; `lonja certs init DIR` makes some)")
_NAMES = ("servercert", "serverkey", "clientcert", "clientkey", "cacerts", "keypassword")


def _is_pyro_config(cfg: Any) -> bool:
    try:
        import Pyro5
        return cfg is Pyro5.config
    except ImportError:
        return False


def _install(contexts: TlsContexts | None) -> None:
    global _active, _original
    import Pyro5.socketutil as socketutil
    with _lock:
        _active = contexts
        if _original is None:
            _original = socketutil.get_ssl_context
            socketutil.get_ssl_context = get_ssl_context


def get_ssl_context(*args: str, **kwargs: str) -> ssl.SSLContext:
    """Pyro5's `socketutil.get_ssl_context`, answered from the contexts lonja built from its settings."""
    kwargs.update(zip(_NAMES, args))
    contexts = _active
    assert _original is not None
    if contexts is None:
        return _original(**kwargs)
    server, client = contexts.pyro_arguments()
    given = {name: kwargs.get(name, "") or "" for name in _NAMES}
    if given == {name: server.get(name, "") for name in _NAMES} and "servercert" in kwargs:
        if contexts.server is None:
            raise ConfigError(NO_SERVER_CERTIFICATE)
        return contexts.server
    if given == {name: client.get(name, "") for name in _NAMES} and "servercert" not in kwargs:
        return contexts.client
    return _original(**kwargs)

