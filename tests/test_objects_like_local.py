"""Remote objects that behave like local ones (issue 10, §3–§5): the remote object explains itself
(`help`, `__doc__`, `inspect.signature`, `dir`, argument checks before sending, `connect(interface=...)`),
remote exceptions keep their class, attributes, location and cause, and attributes read and write.

Every test runs a real name server and `lonja serve shop_service:Shop` (tests/shop_service.py, a service of
a user's own) or the built-in echo service, on 127.0.0.1.
"""

from __future__ import annotations

import inspect
import os
import pydoc
import re
import signal
import subprocess
import sys
import traceback
from typing import Protocol

import pytest
import shop_service

from harness import ROOT, LonjaProcess, calls_started, clean_env
from lonja.clients import (
    LonjaError,
    RemoteError,
    UsageError,
    batch,
    close,
    connect,
    describe,
    uri,
)
from lonja.clients.errors import ArgumentMismatch, InterfaceMismatch

TESTS_PATH = os.pathsep.join([str(ROOT / "tests"), str(ROOT)])


def serve_shop(lonja, ns: str) -> LonjaProcess:
    return lonja.start("serve", "shop_service:Shop", "--ns", ns, env={"PYTHONPATH": TESTS_PATH})


@pytest.fixture
def shop(lonja, ns) -> str:
    """The shop service (tests/shop_service.py) served in its own process; returns the ns address."""
    serve_shop(lonja, ns)
    return ns


class ShopLike(Protocol):
    currency: str

    def buy(self, sku: str, count: int = 1) -> int: ...


class Warehouse(Protocol):
    def buy(self, sku: str, count: int = 1) -> int: ...

    def restock(self, sku: str, count: int) -> None: ...


# -- §3 the remote object explains itself -------------------------------------------------------------

def test_help_doc_and_signature_show_the_remote_class(shop):
    with connect("shop", ns=shop) as proxy:
        text = pydoc.render_doc(proxy, renderer=pydoc.plaintext)
        assert "shop_service.Shop, served as 'shop'" in text
        assert "A small shop: stock by SKU, orders, and errors of its own." in text
        assert "Buying more than is in stock raises OutOfStock." in text  # the whole docstring
        assert "buy(sku: str, count: int = 1, *, note: str = '') -> int" in text
        assert "Buy `count` of `sku`; returns how many are left." in text
        assert "currency: str  [read/write]" in text and "opened: int  [read-only]" in text
        assert "ServiceProxy" not in text.split("\n", 1)[1]  # lonja's class is not what is documented
        assert proxy.__doc__.startswith("shop_service.Shop, served as 'shop'\n\nA small shop")

        method_text = pydoc.render_doc(proxy.buy, renderer=pydoc.plaintext)
        assert "<remote method shop.buy(sku: str, count: int = 1, *, note: str = '') -> int>" in method_text
        assert "Raises OutOfStock if there are fewer than `count`." in method_text
        assert proxy.buy.__doc__.startswith("Buy `count` of `sku`; returns how many are left.")
        signature = inspect.signature(proxy.buy)
        assert str(signature) == "(sku: str, count: int = 1, *, note: str = '') -> int"
        assert list(signature.parameters) == ["sku", "count", "note"]
        assert signature.parameters["note"].kind is inspect.Parameter.KEYWORD_ONLY
        assert proxy.buy.__name__ == "buy"
        assert {"buy", "checkout", "items", "wait", "currency", "opened"} <= set(dir(proxy))


def test_the_class_docs_of_lonja_stay_on_the_classes():
    from lonja.clients import RemoteMethod, ServiceProxy

    assert ServiceProxy.__doc__.startswith("A thread-safe proxy for one remote object")
    assert RemoteMethod.__doc__.startswith("A remote method")


def test_wrong_arguments_fail_before_sending_with_the_signature(shop):
    with connect("shop", ns=shop) as proxy:
        inspect.signature(proxy.buy)  # the description is known from here on
        for args, kwargs in [((), {}), (("apple", 1, 2), {}), (("apple",), {"colour": "red"})]:
            with pytest.raises(ArgumentMismatch) as error:
                proxy.buy(*args, **kwargs)
            assert "shop.buy(sku: str, count: int = 1, *, note: str = '') -> int" in str(error.value)
            assert isinstance(error.value, TypeError) and isinstance(error.value, UsageError)
        with pytest.raises(ArgumentMismatch, match="unexpected keyword argument 'colour'"):
            proxy.buy.oneway("apple", colour="red")
        with pytest.raises(ArgumentMismatch):
            proxy.buy.future()
        assert proxy.buy("apple", note="first") == 2  # right arguments still go through
        assert proxy.buy.options(timeout=5)("apple") == 1


def test_description_is_fetched_once_and_again_for_a_new_instance(lonja, shop):
    host = lonja.processes[-1]
    with connect("shop", ns=shop) as proxy:
        first = proxy.buy.__doc__
        first_uri = uri(proxy)
        inspect.signature(proxy.wait)
        help_calls = [proxy.__doc__, proxy.buy.__doc__, inspect.signature(proxy.items)]
        assert all(help_calls) and first
        host.stop(signal.SIGTERM)
        serve_shop(lonja, shop)
        assert proxy.buy("apple") == 2  # found again through the name server
        assert uri(proxy) != first_uri
        assert "Buy `count`" in proxy.buy.__doc__  # described again, by the new instance
        with pytest.raises(ArgumentMismatch):
            proxy.buy()


def test_interface_types_the_proxy_and_is_checked_at_connect(shop):
    typed: ShopLike = connect("shop", ns=shop, interface=ShopLike)
    try:
        assert typed.buy("apple") == 2
        assert typed.currency == "EUR"
        with pytest.raises(ArgumentMismatch):  # the description came with the check
            typed.buy()
    finally:
        close(typed)  # type: ignore[arg-type]
    with pytest.raises(InterfaceMismatch) as error:
        connect("shop", ns=shop, interface=Warehouse)
    assert "does not implement Warehouse: no method 'restock'" in str(error.value)
    assert isinstance(error.value, LonjaError)


def test_plain_calls_send_nothing_else_and_the_description_is_kept(lonja, shop):
    host = lonja.processes[-1]
    with connect("shop", ns=shop, timeout=5) as proxy:
        assert proxy.buy("apple") == 2
        location = uri(proxy)
        before = calls_started(location)
        for _ in range(5):
            proxy.buy("apple", 0)
        assert calls_started(location) - before == 5
        assert proxy.__doc__ and str(inspect.signature(proxy.wait))
        host.send_signal(signal.SIGSTOP)  # a frozen host answers nothing: what follows must come from the cache
        try:
            assert "Buy `count`" in pydoc.render_doc(proxy.buy, renderer=pydoc.plaintext)
            assert "currency: str  [read/write]" in proxy.__doc__
            assert str(inspect.signature(proxy.items)) == "(count: int) -> collections.abc.Iterator[int]"
            with pytest.raises(ArgumentMismatch):
                proxy.items()
        finally:
            host.send_signal(signal.SIGCONT)
        before = calls_started(location)
        for _ in range(5):
            proxy.buy("apple", 0)  # checked against the signature now, still one request each
        assert calls_started(location) - before == 5


# -- §4 remote exceptions that keep their meaning -----------------------------------------------------

def test_an_importable_exception_arrives_as_its_class_with_its_attributes(shop):
    with connect("shop", ns=shop) as proxy:
        with pytest.raises(shop_service.OutOfStock) as raised:
            proxy.buy("pear", 2)
    error = raised.value
    assert isinstance(error, RemoteError) and isinstance(error, LonjaError)
    assert (error.sku, error.left, error.args) == ("pear", 0, ("pear", 0))
    assert str(error) == "pear: only 0 left"
    assert error.remote_type == "shop_service.OutOfStock"
    file, line, function = error.remote_location
    assert os.path.basename(file) == "shop_service.py" and function == "buy" and line > 0
    assert error.one_line() == f"shop_service.OutOfStock: pear: only 0 left (shop_service.py line {line}, in buy)"
    assert "raise OutOfStock(sku, left)" in error.remote_traceback


def test_an_unknown_exception_is_a_remote_error_named_after_its_type_with_its_cause(shop):
    with connect("shop", ns=shop) as proxy:
        with pytest.raises(shop_service.CheckoutFailed) as raised:
            proxy.checkout("o-1")
    error = raised.value
    assert re.fullmatch(r"shop_service\.py line \d+, in checkout", error.remote_where())
    cause = error.__cause__
    assert cause is error.remote_cause and isinstance(cause, RemoteError)
    assert "shop_backend" not in sys.modules  # the client never imported the ledger's module
    assert type(cause).__name__ == "LedgerLocked" and type(cause).__module__ == "shop_backend"
    assert isinstance(cause, RuntimeError)  # the builtin it derives from
    assert cause.remote_type == "shop_backend.LedgerLocked"
    assert (cause.holder, cause.where) == ("night-batch", "vault")
    assert cause.message == "the ledger is locked, cannot write o-1"
    assert re.fullmatch(r"shop_backend\.py line \d+, in ledger_write", cause.remote_where())
    shown = "".join(traceback.format_exception(error))
    assert "The above exception was the direct cause of the following exception" in shown
    assert "shop_backend.LedgerLocked: the ledger is locked, cannot write o-1" in shown


def test_builtin_exceptions_keep_working(ns, echo):
    with connect("echo", ns=ns) as proxy:
        with pytest.raises(TypeError) as raised:
            proxy.slow("not a number")
    assert isinstance(raised.value, RemoteError)
    assert raised.value.remote_type == "TypeError"
    assert raised.value.remote_location is not None and raised.value.remote_location[2] == "slow"


def test_exceptions_keep_their_meaning_through_futures_and_batches(shop):
    with connect("shop", ns=shop) as proxy:
        failing = proxy.buy.future("pear", 5)
        error = failing.exception(timeout=20)
        assert isinstance(error, shop_service.OutOfStock) and error.left == 0
        with batch(proxy) as calls:
            calls.buy("apple")
            calls.buy("pear")
        with pytest.raises(shop_service.OutOfStock) as raised:
            calls.results()
        assert raised.value.results == [2] and raised.value.sku == "pear"


def test_cli_error_line_names_the_remote_location(lonja, shop):
    result = lonja.run("call", "shop.buy", "pear", "3", "--ns", shop, env={"PYTHONPATH": TESTS_PATH})
    assert result.returncode == 1
    line = result.stderr.strip()
    assert line.startswith("lonja: remote error: shop_service.OutOfStock: pear: only 0 left (shop_service.py line ")
    assert line.endswith(", in buy)") and "\n" not in line
    debug = lonja.run("call", "shop.checkout", "o-2", "--ns", shop, "--debug")
    assert debug.returncode == 1 and "remote traceback:" in debug.stderr
    assert "raise LedgerLocked" in debug.stderr and "raise CheckoutFailed" in debug.stderr


# -- §5 attributes and properties -----------------------------------------------------------------------

def test_attributes_read_and_write_as_attributes(shop):
    with connect("shop", ns=shop) as proxy:
        assert proxy.currency == "EUR" and proxy.opened == 1987
        proxy.currency = "SEK"
        assert proxy.currency == "SEK"
        with pytest.raises(RemoteError):
            proxy.opened = 2000  # read-only on the service
        with pytest.raises(AttributeError):
            proxy.nonexistent = 1
        attributes = describe(proxy)["attributes"]
        assert attributes["currency"] == {"doc": "The currency prices are in.", "writable": True, "type": "str"}
        assert attributes["opened"]["writable"] is False


def test_cli_prints_an_attribute_and_show_says_which_are_writable(lonja, shop):
    result = lonja.run("call", "shop.currency", "--ns", shop)
    assert (result.returncode, result.stdout) == (0, "'EUR'\n"), result.stderr
    as_json = lonja.run("call", "shop.opened", "--json", "--ns", shop)
    assert as_json.stdout == "1987\n"
    wrong = lonja.run("call", "shop.opened", "3", "--ns", shop)
    assert wrong.returncode == 2 and "is an attribute" in wrong.stderr
    shown = lonja.run("show", "shop", "--ns", shop)
    assert "  currency: str  [read/write]" in shown.stdout and "  opened: int  [read-only]" in shown.stdout
    echo_attr = lonja.run("call", "shop.nothing", "--ns", shop)
    assert echo_attr.returncode == 2 and "has no method 'nothing'" in echo_attr.stderr


# -- through every serializer, to plain Pyro5 clients, from plain Pyro5 objects ----------------------------

@pytest.mark.parametrize("serializer", ["msgpack", "serpent", "json", "marshal"])
def test_exception_class_attributes_and_cause_through_every_serializer(lonja, ns, serializer):
    lonja.start("serve", "shop_service:Shop", "--ns", ns,
                env={"PYTHONPATH": TESTS_PATH, "LONJA_LIMITS_ACCEPT_MARSHAL": "true"})
    with connect("shop", ns=ns, serializer=serializer) as proxy:
        with pytest.raises(shop_service.OutOfStock) as raised:
            proxy.buy("pear")
        assert (raised.value.sku, raised.value.left, raised.value.remote_location[2]) == ("pear", 0, "buy")
        with pytest.raises(shop_service.CheckoutFailed) as failed:
            proxy.checkout("o-3")
        cause = failed.value.__cause__
        assert isinstance(cause, RuntimeError) and cause.holder == "night-batch"
        assert cause.remote_location[2] == "ledger_write"


PLAIN_PYRO5_CALLER = '''
import sys
import Pyro5.api
with Pyro5.api.Proxy(sys.argv[1]) as shop:
    try:
        shop.checkout("o-4")
    except Exception as exc:
        print(type(exc).__name__, "|", exc, "|", exc.lonja_remote_type, "|", exc.lonja_where[2], "|",
              exc.lonja_cause["type"], exc.lonja_cause["attributes"]["holder"])
    try:
        shop.buy("pear")
    except Exception as exc:
        print(type(exc).__name__, "|", exc, "|", exc.lonja_args, exc.lonja_attributes)
'''


def test_plain_pyro5_clients_still_rebuild_the_exceptions(lonja, shop):
    with connect("shop", ns=shop) as proxy:
        location = uri(proxy)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYRO_", "LONJA_"))}
    result = subprocess.run([sys.executable, "-c", PLAIN_PYRO5_CALLER, location], capture_output=True, text=True,
                            timeout=30, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "Exception | order o-4 not written | shop_service.CheckoutFailed | checkout | "
        "shop_backend.LedgerLocked night-batch",
        "Exception | pear: only 0 left | ['pear', 0] {'sku': 'pear', 'left': 0}",
    ]


PLAIN_SERVER = '''
import sys
import Pyro5.api


@Pyro5.api.expose
class Thing:
    def add(self, a, b):
        return a + b


host, port = sys.argv[1].split(":")
daemon = Pyro5.api.Daemon(host="127.0.0.1")
uri = daemon.register(Thing(), "thing")
Pyro5.api.locate_ns(host, int(port)).register("plain.thing", uri)
print("serving", uri, flush=True)
daemon.requestLoop()
'''


def test_a_plain_pyro5_object_says_what_it_can(ns, tmp_path):
    script = tmp_path / "plain_server.py"
    script.write_text(PLAIN_SERVER)
    process = subprocess.Popen([sys.executable, str(script), ns], env=clean_env(tmp_path), cwd=tmp_path, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        line = process.stdout.readline()
        assert line.startswith("serving PYRO:thing@127.0.0.1:"), line + process.stdout.read()
        with connect("plain.thing", ns=ns) as thing:
            assert "'plain.thing': a plain Pyro5 object" in thing.__doc__
            assert "add(...)" in thing.__doc__
            assert str(inspect.signature(thing.add)) == "(*args: 'Any', **kwargs: 'Any') -> 'Any'"
            assert thing.add(2, 3) == 5
            with pytest.raises(TypeError):  # no signature known: the object itself says so
                thing.add(1)
    finally:
        process.kill()
        process.wait(10)
