"""TLS: `lonja certs init`, then up, ls and call under mutual TLS; refused clients get one clear line.

End to end in subprocesses (Pyro5's TLS settings are process-global); the settings checks in-process.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import pytest

from harness import free_port, ns_address
from lonja.config import ConfigError, load_settings
from lonja.config.certs import init_certs
from lonja.config.tls import apply_tls


class _Cfg:
    """Stands in for Pyro5's config object: apply_tls only sets attributes."""


@pytest.fixture
def certs(lonja, tmp_path):
    result = lonja.run("certs", "init", str(tmp_path / "certs"))
    assert result.returncode == 0, result.stderr
    assert "LONJA_TLS_ENABLED=true" in result.stdout and "client.key" in result.stdout
    return tmp_path / "certs"


@pytest.fixture(scope="module")
def dev_certs(tmp_path_factory) -> Path:
    """A certificate set made in-process (faster), for the settings checks."""
    return init_certs(tmp_path_factory.mktemp("dev") / "certs")["ca.pem"].parent


def _server_env(certs, require_client_cert=True):
    env = {"LONJA_TLS_ENABLED": "true", "LONJA_TLS_CA": str(certs / "ca.pem"),
           "LONJA_TLS_CERT": str(certs / "server.pem"), "LONJA_TLS_KEY": str(certs / "server.key")}
    if require_client_cert:
        env["LONJA_TLS_REQUIRE_CLIENT_CERT"] = "true"
    return env


def _client_env(certs, with_certificate=True, ca=None):
    env = {"LONJA_TLS_ENABLED": "true", "LONJA_TLS_CA": str(ca or certs / "ca.pem")}
    if with_certificate:
        env.update({"LONJA_TLS_CERT": str(certs / "client.pem"), "LONJA_TLS_KEY": str(certs / "client.key")})
    return env


def _one_line(result) -> str:
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1, result.stderr
    return result.stderr


def test_certs_init_refuses_to_overwrite(lonja, certs):
    again = lonja.run("certs", "init", str(certs))
    assert again.returncode == 2 and "already holds ca.pem" in again.stderr and "--force" in again.stderr
    assert lonja.run("certs", "init", str(certs), "--force").returncode == 0
    assert (certs / "server.key").stat().st_mode & 0o077 == 0
    assert (certs / "ca.key").stat().st_mode & 0o077 == 0


def test_up_ls_call_under_mutual_tls(lonja, certs, dev_certs):
    ns = ns_address(lonja.start("up", "--port", "0", "--storage", "memory", "--no-web", env=_server_env(certs)))
    listing = lonja.run("ls", "--ns", ns, env=_client_env(certs))
    assert listing.returncode == 0, listing.stderr
    assert "echo" in listing.stdout
    call = lonja.run("call", "echo.echo", "'over tls'", "--ns", ns, env=_client_env(certs))
    assert (call.returncode, call.stdout) == (0, "'over tls'\n")

    no_cert = lonja.run("call", "echo.echo", "hi", "--ns", ns, env=_client_env(certs, with_certificate=False))
    assert no_cert.returncode == 5
    assert "TLS handshake with the name server" in _one_line(no_cert)
    assert "requires a client certificate" in no_cert.stderr

    # another CA's client certificate: the server does not trust it (and the client not the server)
    strange = lonja.run("ls", "--ns", ns, env=_client_env(dev_certs))
    assert strange.returncode == 5 and "TLS handshake" in _one_line(strange)
    distrust = lonja.run("ls", "--ns", ns, env=_client_env(certs, ca=dev_certs / "ca.pem"))
    assert distrust.returncode == 5 and "certificate verify failed" in _one_line(distrust)

    plain = lonja.run("ls", "--ns", ns)
    assert plain.returncode in (3, 5) and "TLS" in _one_line(plain)


def test_service_requiring_client_certificates(lonja, certs):
    """The name server takes any TLS client; the service wants certificates: the refusal names the service."""
    ns = ns_address(lonja.start("ns", "--port", "0", "--storage", "memory", ready="name server listening",
                                env=_server_env(certs, require_client_cert=False)))
    lonja.start("serve", "echo", "--ns", ns, ready="serving echo", env=_server_env(certs))
    anonymous = _client_env(certs, with_certificate=False)
    assert lonja.run("ls", "--ns", ns, env=anonymous).returncode == 0
    refused = lonja.run("call", "echo.echo", "hi", "--ns", ns, env=anonymous)
    assert refused.returncode == 5 and "TLS handshake with service 'echo'" in _one_line(refused)
    assert lonja.run("call", "echo.echo", "hi", "--ns", ns, env=_client_env(certs)).returncode == 0


def test_tls_client_against_plain_server_and_server_without_certificate(lonja, ns, certs):
    mismatch = lonja.run("ls", "--ns", ns, env=_client_env(certs))
    assert mismatch.returncode in (3, 5) and "TLS" in _one_line(mismatch)
    no_cert = lonja.run("ns", "--port", str(free_port()), "--storage", "memory",
                        env=_client_env(certs, with_certificate=False))
    assert no_cert.returncode == 2 and "tls.cert is empty" in _one_line(no_cert)


def _settings(**env: str):
    return load_settings(environ={"LONJA_TLS_ENABLED": "true", **{f"LONJA_TLS_{k.upper()}": v for k, v in env.items()}})


def test_tls_settings_errors(tmp_path, dev_certs):
    d = dev_certs
    cases = [
        (dict(ca="nope.pem"), r"tls.ca \(env LONJA_TLS_CA\): .*nope.pem does not exist \(relative paths are taken "
                              r"from the current directory"),
        (dict(ca=str(d / "ca.pem"), cert=str(d)), "tls.cert .* is not a file"),
        (dict(ca=str(d / "ca.pem"), key=str(d / "client.key")), "tls.key is set .* but tls.cert is empty"),
        (dict(require_client_cert="true"), "tls.require_client_cert is on .* tls.ca is empty"),
        (dict(ca=str(d / "client.key")), "tls.ca .* holds no PEM certificate"),
        (dict(cert=str(d / "client.key"), key=str(d / "client.key")), "tls.cert .* holds no PEM certificate"),
        (dict(cert=str(d / "client.pem"), key=str(d / "ca.pem")), "tls.key .* holds no PEM private key"),
        (dict(cert=str(d / "client.pem")), "tls.cert .* has no private key in it: set tls.key"),
        (dict(cert=str(d / "client.pem"), key=str(d / "server.key")), "is not the private key of tls.cert"),
    ]
    for env, message in cases:
        with pytest.raises(ConfigError, match=message):
            apply_tls(_settings(**env), _Cfg())

    from cryptography.hazmat.primitives import serialization
    key = serialization.load_pem_private_key((d / "client.key").read_bytes(), None)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.BestAvailableEncryption(b"secret")))
    with pytest.raises(ConfigError, match="encrypted private key: lonja needs it unencrypted"):
        apply_tls(_settings(cert=str(d / "client.pem"), key=str(encrypted)), _Cfg())

    if os.geteuid() != 0:   # root reads anything
        unreadable = tmp_path / "unreadable.pem"
        unreadable.write_text("x")
        unreadable.chmod(0)
        with pytest.raises(ConfigError, match="not readable by this user"):
            apply_tls(_settings(ca=str(unreadable)), _Cfg())


def test_tls_settings_applied(tmp_path, dev_certs):
    d = dev_certs
    cfg = _Cfg()
    apply_tls(load_settings(environ={}), cfg)
    assert cfg.SSL is False and cfg.SSL_SERVERCERT == "" and cfg.SSL_REQUIRECLIENTCERT is False

    (tmp_path / "rel").mkdir()
    for name in ("ca.pem", "client.pem", "client.key"):
        (tmp_path / "rel" / name).write_bytes((d / name).read_bytes())
    contexts = apply_tls(_settings(ca="rel/ca.pem", cert="rel/client.pem", key="rel/client.key",
                                   require_client_cert="true"), cfg)
    assert cfg.SSL is True and cfg.SSL_REQUIRECLIENTCERT is True
    assert cfg.SSL_SERVERCERT == cfg.SSL_CLIENTCERT == str(tmp_path / "rel" / "client.pem")   # from the cwd
    assert cfg.SSL_SERVERKEY == cfg.SSL_CLIENTKEY == str(tmp_path / "rel" / "client.key")
    assert str(tmp_path / "rel" / "ca.pem") == cfg.SSL_CACERTS and cfg.SSL_SERVERKEYPASSWD == ""
    assert contexts.server.verify_mode == ssl.CERT_REQUIRED and contexts.client.check_hostname

    combined = tmp_path / "combined.pem"   # the key inside the certificate file
    combined.write_text((d / "server.pem").read_text() + (d / "server.key").read_text())
    contexts = apply_tls(_settings(cert=str(combined)), cfg)   # no CA: clients trust the system's CAs
    assert cfg.SSL_SERVERKEY == "" and cfg.SSL_CACERTS == "" and contexts.server.verify_mode == ssl.CERT_NONE
    contexts = apply_tls(_settings(ca=str(d)), cfg)            # a CA folder, and no certificate of our own
    assert str(d) == cfg.SSL_CACERTS and contexts.server is None


def test_pyro5_uses_the_applied_contexts(dev_certs):
    """Pyro5's get_ssl_context answers from the latest settings (Pyro5 alone caches the first for good)."""
    import Pyro5
    import Pyro5.socketutil as socketutil
    cfg = Pyro5.config
    d = dev_certs
    try:
        first = apply_tls(_settings(ca=str(d / "ca.pem"), cert=str(d / "server.pem"), key=str(d / "server.key")), cfg)
        server = dict(servercert=cfg.SSL_SERVERCERT, serverkey=cfg.SSL_SERVERKEY,
                      keypassword=cfg.SSL_SERVERKEYPASSWD, cacerts=cfg.SSL_CACERTS)
        client = dict(clientcert=cfg.SSL_CLIENTCERT, clientkey=cfg.SSL_CLIENTKEY,
                      keypassword=cfg.SSL_CLIENTKEYPASSWD, cacerts=cfg.SSL_CACERTS)
        assert socketutil.get_ssl_context(**server) is first.server
        assert socketutil.get_ssl_context(**client) is first.client
        second = apply_tls(_settings(ca=str(d / "ca.pem")), cfg)
        assert socketutil.get_ssl_context(clientcert="", clientkey="", keypassword="", cacerts=cfg.SSL_CACERTS) \
            is second.client
        with pytest.raises(ConfigError, match=r"tls\.cert is empty: a name server or service host needs"):
            socketutil.get_ssl_context(servercert="", serverkey="", keypassword="", cacerts=cfg.SSL_CACERTS)
    finally:
        apply_tls(load_settings(environ={}), cfg)
    assert cfg.SSL is False
