"""Settings layers (defaults < file < environment < flags), `config show`, and clear errors."""

from __future__ import annotations

import json

import pytest

from lonja.config import ConfigError, load_settings


def test_defaults_are_the_embedded_default():
    settings = load_settings(environ={})
    assert (settings["ns.host"], settings["ns.port"], settings["ns.storage"]) == ("127.0.0.1", 9090, "sqlite")
    assert settings["ns.broadcast"] is False
    assert settings.source("ns.port") == "default"


def test_layers_later_wins(tmp_path):
    user = tmp_path / "my.toml"
    user.write_text("[ns]\nport = 9100\nhost = '127.0.0.2'\n\n[client]\ntimeout = 4.5\n")
    settings = load_settings(user, environ={"LONJA_NS_PORT": "9200"},
                             flags={"ns.host": ("127.0.0.3", "--host")})
    assert settings["client.timeout"] == 4.5
    assert settings.source("client.timeout") == f"file {user}:6"
    assert settings["ns.port"] == 9200 and settings.source("ns.port") == "env LONJA_NS_PORT"
    assert settings["ns.host"] == "127.0.0.3" and settings.source("ns.host") == "flag --host"


def test_file_from_env_and_local_lonja_toml(tmp_path):
    (tmp_path / "lonja.toml").write_text("[ns]\nport = 9301\n")
    assert load_settings(environ={}, cwd=tmp_path)["ns.port"] == 9301
    other = tmp_path / "other.toml"
    other.write_text("[ns]\nport = 9302\n")
    assert load_settings(environ={"LONJA_CONFIG": str(other)}, cwd=tmp_path)["ns.port"] == 9302
    assert load_settings(tmp_path / "lonja.toml", environ={"LONJA_CONFIG": str(other)})["ns.port"] == 9301


def test_shortcuts():
    settings = load_settings(environ={"LONJA_NS": "[::1]:9400", "LONJA_DATA_DIR": "/tmp/somewhere"})
    assert (settings["ns.host"], settings["ns.port"]) == ("::1", 9400)
    assert settings.ns_address == "[::1]:9400"
    assert str(settings.data_dir) == "/tmp/somewhere"


@pytest.mark.parametrize("text, expected", [
    ("[ns]\n\nport = 'ninety'\n", "invalid value 'ninety' for ns.port from file {path}:3: expected an integer"),
    ("[ns]\nport = 70000\n", "invalid value 70000 for ns.port from file {path}:2: expected a port is 0..65535"),
    ("[ns]\nprot = 1\n", "unknown setting 'ns.prot' in file {path}:2; known keys: ns.advertise, ns.broadcast"),
    ("[nameserver]\nport = 1\n", "unknown setting 'nameserver.port' in file {path}:2; known sections:"),
    ("[client]\nserializer = 'pickle'\n", "expected one of msgpack, serpent, json, marshal"),
    ("[ns\nport = 1\n", "is not valid TOML"),
])
def test_bad_file_values_name_key_value_and_line(tmp_path, text, expected):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_settings(path, environ={})
    assert expected.format(path=path) in str(error.value)


@pytest.mark.parametrize("environ, expected", [
    ({"LONJA_CLIENT_TIMEOUT": "soon"}, "invalid value 'soon' for client.timeout from env LONJA_CLIENT_TIMEOUT"),
    ({"LONJA_NS_BROADCAST": "maybe"}, "expected true or false"),
    ({"LONJA_CLIENT_BUSY_WAIT": "-0.001"},
     "invalid value '-0.001' for client.busy_wait from env LONJA_CLIENT_BUSY_WAIT: expected 0 or more"),
    ({"LONJA_NSPORT": "1"}, "unknown environment variable LONJA_NSPORT"),
    ({"LONJA_NS": "localhost:http"}, "invalid port 'http' in 'localhost:http' from LONJA_NS"),
    ({"LONJA_CONFIG": "/does/not/exist.toml"}, "config file /does/not/exist.toml (from LONJA_CONFIG) does not exist"),
])
def test_bad_environment(environ, expected):
    with pytest.raises(ConfigError) as error:
        load_settings(environ=environ)
    assert expected in str(error.value)


def test_config_show_and_errors_through_cli(lonja, tmp_path):
    (tmp_path / "lonja.toml").write_text("[client]\nretries = 5\n")
    shown = lonja.run("config", "show", "--json", "--ns", "127.0.0.1:9555", env={"LONJA_CLIENT_TIMEOUT": "3"})
    assert shown.returncode == 0, shown.stderr
    values = json.loads(shown.stdout)
    assert values["client.retries"] == {"value": 5, "source": f"file {tmp_path / 'lonja.toml'}:2"}
    assert values["client.timeout"] == {"value": 3.0, "source": "env LONJA_CLIENT_TIMEOUT"}
    assert values["ns.port"] == {"value": 9555, "source": "flag --ns"}
    assert values["ns.host"]["value"] == "127.0.0.1"
    assert len(values) == len(list(load_settings(environ={}).items()))

    text = lonja.run("config", "show").stdout
    assert "client.retries" in text and "# file " in text and "# default" in text

    bad = lonja.run("config", "show", env={"LONJA_CLIENT_RETRIES": "-1"})
    assert bad.returncode == 2
    assert bad.stderr.strip() == ("lonja: error: invalid value '-1' for client.retries from env "
                                  "LONJA_CLIENT_RETRIES: expected 0 or more")


def test_stray_pyro_variable_is_a_clear_error(lonja):
    result = lonja.run("ls", env={"PYRO_ONEWAY_THREADED": "true"})
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "PYRO_ONEWAY_THREADED" in result.stderr and "Remove or fix the environment variable" in result.stderr
    assert result.stderr.count("\n") == 1
