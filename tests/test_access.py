"""Access control on the name server (and on services): roles, owners, the protected entry, anonymity."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import Pyro5.api
import Pyro5.errors
import pytest

from lonja.clients import AccessDenied, NameServerClient, connect

ADMIN, SHOP, BANK, VIEWER = "rootsecret1", "shopsecret1", "banksecret1", "viewsecret1"
AUTH = {"LONJA_AUTH_ENABLED": "true", "LONJA_AUTH_ADMIN_TOKENS": f"root:{ADMIN}",
        "LONJA_AUTH_SERVICE_TOKENS": f"shop:{SHOP},bank:{BANK}", "LONJA_AUTH_READER_TOKENS": f"viewer:{VIEWER}",
        "LONJA_LOG_LEVEL": "info"}
URI = "PYRO:obj@127.0.0.1:1"


@pytest.fixture
def secured(lonja):
    lonja.env.update(AUTH)
    process, ns = lonja.nameserver()
    with NameServerClient(ns, token=SHOP) as shop:
        shop.register("shop.orders", URI, {"team:shop"})
    with NameServerClient(ns, token=BANK) as bank:
        bank.register("bank.ledger", URI)
    return process, ns


def test_anonymous_plain_pyro5_reads_but_never_writes(secured):
    _, ns = secured
    host, port = ns.split(":")
    with Pyro5.api.locate_ns(host, int(port)) as plain:
        assert {"shop.orders", "bank.ledger", "Pyro.NameServer"} <= set(plain.list())
        assert str(plain.lookup("shop.orders")) == URI
        writes = [lambda: plain.register("evil", URI), lambda: plain.register("shop.orders", "PYRO:x@1.2.3.4:1"),
                  lambda: plain.remove("shop.orders"), lambda: plain.remove(prefix=""),
                  lambda: plain.set_metadata("bank.ledger", {"pwned"}),
                  lambda: plain.register("Pyro.NameServer", URI)]
        for write in writes:
            with pytest.raises(Pyro5.errors.SecurityError) as error:
                write()
            assert "may not change" in str(error.value) or "own entry" in str(error.value)
            plain._pyroRelease()
    with NameServerClient(ns, token=ADMIN) as admin:
        assert admin.lookup("shop.orders")[0] == URI and "evil" not in admin.list()


def test_pyro5_nsc_lists_anonymously(secured):
    _, ns = secured
    host, port = ns.split(":")
    nsc = Path(sys.executable).with_name("pyro5-nsc")
    result = subprocess.run([str(nsc), "-n", host, "-p", port, "list"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and "shop.orders --> " + URI in result.stdout


def test_wrong_token_is_refused(secured, lonja):
    _, ns = secured
    with pytest.raises(AccessDenied, match="invalid token"):
        NameServerClient(ns, token="not-a-token").list()
    result = lonja.run("ls", "--ns", ns, env={"LONJA_AUTH_TOKEN": "not-a-token"})
    assert result.returncode == 5 and "invalid token" in result.stderr and "Traceback" not in result.stderr


def test_reader_reads_only(secured):
    _, ns = secured
    with NameServerClient(ns, token=VIEWER) as viewer:
        assert viewer.whoami() == {"who": "viewer", "role": "reader"}
        assert "shop.orders" in viewer.list()
        for write in (lambda: viewer.register("x", URI), lambda: viewer.remove("shop.orders"),
                      lambda: viewer.register_instance("x", URI), lambda: viewer.unregister("shop.orders", URI)):
            with pytest.raises(AccessDenied, match="may not change names"):
                write()


def test_service_changes_only_its_own_names(secured):
    _, ns = secured
    with NameServerClient(ns, token=SHOP) as shop:
        assert shop.whoami() == {"who": "shop", "role": "service"}
        shop.register("shop.orders", "PYRO:obj@127.0.0.1:2", {"team:shop"})
        shop.register("shop.new", URI)
        for write in (lambda: shop.register("bank.ledger", URI), lambda: shop.remove("bank.ledger"),
                      lambda: shop.register_instance("bank.ledger", URI), lambda: shop.remove(prefix="b")):
            with pytest.raises(AccessDenied):
                write()
        assert shop.remove("Pyro.NameServer") == 0
        assert shop.remove("shop.new") == 1
    with NameServerClient(ns, token=BANK) as bank:
        assert bank.lookup("bank.ledger")[0] == URI
        assert bank.lookup("shop.orders")[1] == {"team:shop"}, "the owner tag is the name server's own"


def test_admin_changes_anything_but_the_name_server_entry(secured):
    process, ns = secured
    with NameServerClient(ns, token=ADMIN) as admin:
        admin.register("bank.ledger", "PYRO:obj@127.0.0.1:3")
        assert admin.remove("shop.orders") == 1
        with pytest.raises(AccessDenied, match="own entry"):
            admin.register("Pyro.NameServer", URI)
        assert admin.remove("Pyro.NameServer") == 0
        assert admin.lookup("Pyro.NameServer")[0].endswith(ns)
    log = process.output()
    assert "root (admin) registered bank.ledger -> PYRO:obj@127.0.0.1:3" in log
    assert "shop (service) registered shop.orders" in log and "root (admin) removed shop.orders" in log


def test_services_register_with_their_token_and_can_require_one(secured, lonja):
    _, ns = secured
    refused = lonja.run("serve", "echo", "--ns", ns)
    assert refused.returncode == 5 and "may not change names" in refused.stderr
    lonja.start("serve", "echo", "--ns", ns, env={"LONJA_AUTH_TOKEN": f"shop:{SHOP}",
                                                   "LONJA_AUTH_REQUIRE_TOKEN": "true"})
    listing = lonja.run("ls", "--ns", ns, env={"LONJA_AUTH_TOKEN": VIEWER})
    assert listing.returncode == 0 and "echo" in listing.stdout
    anonymous = lonja.run("call", "echo.echo", "1", "--ns", ns)
    assert anonymous.returncode == 5 and "requires a token" in anonymous.stderr
    allowed = lonja.run("call", "echo.echo", "1", "--ns", ns, env={"LONJA_AUTH_TOKEN": VIEWER})
    assert (allowed.returncode, allowed.stdout) == (0, "1\n")
    with connect("echo", ns=ns) as proxy:
        with pytest.raises(AccessDenied, match="requires a token"):
            proxy.echo(1)


def test_anonymous_read_can_be_switched_off(lonja):
    lonja.env.update({**AUTH, "LONJA_AUTH_ALLOW_ANONYMOUS_READ": "false"})
    _, ns = lonja.nameserver()
    with pytest.raises(Pyro5.errors.CommunicationError, match="requires a token"):
        Pyro5.api.Proxy(f"PYRO:Pyro.NameServer@{ns}").list()
    with NameServerClient(ns, token=VIEWER) as viewer:
        assert "Pyro.NameServer" in viewer.list()
