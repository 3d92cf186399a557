"""TLS: `lonja certs init`, then up, ls and call under mutual TLS; a client without a certificate is refused."""

from __future__ import annotations

import pytest

from config import ConfigError, load_settings
from config.tls import apply_tls
from conftest import free_port


class _Cfg:
    """Stands in for Pyro5's config object: apply_tls only sets attributes."""


@pytest.fixture
def certs(lonja, tmp_path):
    result = lonja.run("certs", "init", str(tmp_path / "certs"))
    assert result.returncode == 0, result.stderr
    assert "LONJA_TLS_ENABLED=true" in result.stdout
    return tmp_path / "certs"


def _server_env(certs):
    return {"LONJA_TLS_ENABLED": "true", "LONJA_TLS_CA": str(certs / "ca.pem"),
            "LONJA_TLS_CERT": str(certs / "server.pem"), "LONJA_TLS_KEY": str(certs / "server.key"),
            "LONJA_TLS_REQUIRE_CLIENT_CERT": "true"}


def _client_env(certs, with_certificate=True):
    env = {"LONJA_TLS_ENABLED": "true", "LONJA_TLS_CA": str(certs / "ca.pem")}
    if with_certificate:
        env.update({"LONJA_TLS_CERT": str(certs / "client.pem"), "LONJA_TLS_KEY": str(certs / "client.key")})
    return env


def test_certs_init_refuses_to_overwrite(lonja, certs):
    again = lonja.run("certs", "init", str(certs))
    assert again.returncode == 2 and "already exist: use --force" in again.stderr
    assert lonja.run("certs", "init", str(certs), "--force").returncode == 0


def test_up_ls_call_under_mutual_tls(lonja, certs):
    port = free_port()
    lonja.start("up", "--port", str(port), env=_server_env(certs))
    ns = f"127.0.0.1:{port}"
    listing = lonja.run("ls", "--ns", ns, env=_client_env(certs))
    assert listing.returncode == 0, listing.stderr
    assert "echo" in listing.stdout
    call = lonja.run("call", "echo.echo", "'over tls'", "--ns", ns, env=_client_env(certs))
    assert (call.returncode, call.stdout) == (0, "'over tls'\n")

    no_cert = lonja.run("ls", "--ns", ns, env=_client_env(certs, with_certificate=False))
    assert no_cert.returncode == 5, no_cert.stderr
    assert "TLS" in no_cert.stderr and "certificate" in no_cert.stderr
    assert "Traceback" not in no_cert.stderr and no_cert.stderr.count("\n") == 1

    plain = lonja.run("ls", "--ns", ns)
    assert plain.returncode in (3, 5) and "Traceback" not in plain.stderr
    assert "TLS" in plain.stderr


def test_tls_settings_errors(tmp_path, certs):
    settings = load_settings(environ={"LONJA_TLS_ENABLED": "true", "LONJA_TLS_CA": str(tmp_path / "nope.pem")})
    with pytest.raises(ConfigError, match="tls.ca names .*nope.pem .*not a readable file"):
        apply_tls(settings, _Cfg())
    settings = load_settings(environ={"LONJA_TLS_ENABLED": "true"})
    with pytest.raises(ConfigError, match="tls.ca is empty"):
        apply_tls(settings, _Cfg())
    settings = load_settings(environ={"LONJA_TLS_ENABLED": "true", "LONJA_TLS_CA": str(certs / "ca.pem"),
                                      "LONJA_TLS_CERT": str(certs / "client.pem")})
    with pytest.raises(ConfigError, match="tls.cert and tls.key go together"):
        apply_tls(settings, _Cfg())
    cfg = _Cfg()
    apply_tls(load_settings(environ={}), cfg)
    assert cfg.SSL is False
