"""The installed `lonja` command run from a user's own folder: it serves the user's modules from there, and
the user's files named like lonja's folders (config.py, clients.py, services/, nameserver.py) change nothing.

These run the console script next to sys.executable, as a user would, without the repository on PYTHONPATH.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness import ROOT, free_port, wait_until
from lonja.clients import NameServerClient

LONJA = Path(sys.executable).with_name("lonja")


def readme_greeting() -> str:
    """The greeting.py of the README's "A service of your own", exactly as printed there."""
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"Save this as `greeting\.py`:\n\n```python\n(.*?)```", readme, re.DOTALL)
    assert match, "README: no ```python block after 'Save this as `greeting.py`:'"
    return match.group(1)


def user_env(tmp_path: Path) -> dict[str, str]:
    """A user's environment: no PYTHONPATH, no PYRO_*/LONJA_* variables, data under tmp_path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYRO_", "LONJA_")) and k != "PYTHONPATH"}
    env["LONJA_DATA_DIR"] = str(tmp_path / "data")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run(args: list[str], folder: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=folder, env=env, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def registered(ns: str, name: str) -> bool:
    with NameServerClient(ns) as names:
        return name in names.list()


def serve_and_call(folder: Path, ns: str, env: dict[str, str], *serve_args: str) -> str:
    """Run `lonja serve greeting:Greeter` from `folder`, call greeter.hello ana, stop it; what the call printed."""
    server = subprocess.Popen([str(LONJA), "serve", "greeting:Greeter", "--ns", ns, *serve_args], cwd=folder,
                              env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        wait_until(lambda: server.poll() is not None or registered(ns, "greeter"), timeout=30)
        if server.poll() is not None:
            raise AssertionError(f"lonja serve exited {server.returncode}:\n{server.communicate()[0]}")
        call = run([str(LONJA), "call", "greeter.hello", "ana", "--ns", ns], folder, env)
        assert call.returncode == 0, call.stderr
        return call.stdout
    finally:
        if server.poll() is None:
            os.kill(server.pid, signal.SIGTERM)
        try:
            server.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(server.pid, signal.SIGKILL)
            server.communicate()


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """A user's folder holding the README's greeting.py."""
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "greeting.py").write_text(readme_greeting())
    return folder


def test_readme_service_example_works_with_the_console_script(app, ns, tmp_path):
    assert LONJA.exists(), f"no console script at {LONJA}: install with pip install -e '.[test]'"
    assert serve_and_call(app, ns, user_env(tmp_path)) == "'hello ana!'\n"


def test_app_dir_serves_from_another_folder(app, ns, tmp_path):
    assert serve_and_call(tmp_path, ns, user_env(tmp_path), "--app-dir", "app") == "'hello ana!'\n"


def test_users_own_config_clients_services_and_nameserver_change_nothing(app, ns, tmp_path):
    (app / "config.py").write_text("import a_module_that_does_not_exist\n")
    (app / "clients.py").write_text("def connect(*args, **kwargs):\n    raise RuntimeError('the user\\'s connect')\n")
    (app / "services").mkdir()
    (app / "services" / "__init__.py").write_text("raise ImportError('the user\\'s services package')\n")
    (app / "nameserver.py").write_text("this is not python\n")
    env = user_env(tmp_path)

    help_text = run([str(LONJA), "--help"], app, env)
    assert help_text.returncode == 0 and "serve" in help_text.stdout, help_text.stderr

    script = "from lonja.clients import connect; import lonja.nameserver, lonja.services, lonja.config; " \
             "print(connect.__module__)"
    imported = run([sys.executable, "-c", script], app, env)
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.startswith("lonja.clients")

    assert serve_and_call(app, ns, env) == "'hello ana!'\n"


def check_error_points_at(result: subprocess.CompletedProcess, path: Path, line: int, text: str) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("lonja: error: cannot import module"), result.stderr
    assert f'File "{path}", line {line}' in result.stderr, result.stderr
    assert result.stderr.rstrip("\n").endswith(f"| {text}"), result.stderr  # the user's own line, last
    assert "Traceback" not in result.stderr and "importlib" not in result.stderr, result.stderr
    assert str(ROOT) not in result.stderr, result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr


def test_an_error_in_the_users_module_shows_the_users_line(tmp_path):
    folder = tmp_path / "app"
    folder.mkdir()
    env = user_env(tmp_path)
    unused = f"127.0.0.1:{free_port()}"
    (folder / "missing.py").write_text("import os\n\nimport nonexistent\n")
    (folder / "syntax.py").write_text("x = 1\ndef broken(:\n    pass\n")
    (folder / "outer.py").write_text("import helper\n")
    (folder / "helper.py").write_text(textwrap.dedent("""\
        def share(count):
            return 1 / count

        share(0)
    """))
    (folder / "badname.py").write_text(textwrap.dedent("""\
        from lonja import service

        @service("has space")
        class Bad:
            pass
    """))

    missing = run([str(LONJA), "serve", "missing:Service", "--ns", unused], folder, env)
    check_error_points_at(missing, folder / "missing.py", 3, "import nonexistent")
    assert "ModuleNotFoundError: No module named 'nonexistent'" in missing.stderr

    syntax = run([str(LONJA), "serve", "syntax:Service", "--ns", unused], folder, env)
    check_error_points_at(syntax, folder / "syntax.py", 2, "def broken(:")
    assert "SyntaxError:" in syntax.stderr

    deeper = run([str(LONJA), "serve", "outer:Service", "--ns", unused], folder, env)
    check_error_points_at(deeper, folder / "helper.py", 2, "return 1 / count")
    assert "ZeroDivisionError: division by zero" in deeper.stderr

    in_lonja = run([str(LONJA), "serve", "badname:Bad", "--ns", unused], folder, env)
    check_error_points_at(in_lonja, folder / "badname.py", 3, '@service("has space")')

    elsewhere = run([str(LONJA), "serve", "missing:Service", "--app-dir", "app", "--ns", unused], tmp_path, env)
    check_error_points_at(elsewhere, folder / "missing.py", 3, "import nonexistent")


def test_a_module_that_is_not_there_names_the_folder(tmp_path):
    env = user_env(tmp_path)
    result = run([str(LONJA), "serve", "greeting:Greeter"], tmp_path, env)
    assert result.returncode == 2
    assert result.stderr == (f"lonja: error: cannot import module 'greeting' for 'greeting:Greeter': no module "
                             f"'greeting' in {tmp_path.resolve()} (--app-dir DIR to import from another folder) "
                             f"or the installed packages\n")
    no_folder = run([str(LONJA), "serve", "greeting:Greeter", "--app-dir", "nowhere"], tmp_path, env)
    assert no_folder.returncode == 2 and no_folder.stderr == "lonja: error: --app-dir nowhere: no such folder\n"
