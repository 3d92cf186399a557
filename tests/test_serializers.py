"""What each serializer keeps and what it changes, round-tripped through a real service."""

from __future__ import annotations

import datetime
import decimal
import uuid

import pytest

from lonja.clients import RemoteError, SerializationError, batch, connect

VALUES = {
    "str": "héllo", "bytes": b"\x00\xff", "int": 2 ** 70, "float": 1.5, "bool": True, "None": None,
    "list": [1, "a"], "tuple": (1, "a"), "dict": {"a": 1, 2: "b"}, "set": {1, 2},
    "datetime": datetime.datetime(2026, 1, 2, 3, 4, 5, 6), "Decimal": decimal.Decimal("1.10"),
    "UUID": uuid.UUID(int=5),
}
SAME = object()
ERROR = object()
# What comes back, where it differs from what was sent (the README's table says the same).
CHANGES = {
    "msgpack": {"tuple": [1, "a"], "set": [1, 2], "Decimal": "1.10", "UUID": str(uuid.UUID(int=5))},
    "serpent": {"bytes": {"data": "AP8=", "encoding": "base64"}, "datetime": "2026-01-02T03:04:05.000006",
                "Decimal": "1.10", "UUID": str(uuid.UUID(int=5))},
    "json": {"bytes": ERROR, "tuple": [1, "a"], "dict": {"a": 1, "2": "b"}, "set": [1, 2],
             "datetime": "2026-01-02T03:04:05.000006", "Decimal": "1.10", "UUID": str(uuid.UUID(int=5))},
    "marshal": {"datetime": ERROR, "Decimal": ERROR, "UUID": str(uuid.UUID(int=5))},
}


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    from harness import Lonja
    lonja = Lonja(tmp_path_factory.mktemp("serializers"))
    try:
        _, ns = lonja.nameserver()
        lonja.start("serve", "echo", "--ns", ns, env={"LONJA_LIMITS_ACCEPT_MARSHAL": "true"})
        yield ns
    finally:
        lonja.cleanup()


@pytest.mark.parametrize("serializer", sorted(CHANGES))
def test_round_trip(service, serializer):
    with connect("echo", ns=service, serializer=serializer) as proxy:
        for kind, value in VALUES.items():
            expected = CHANGES[serializer].get(kind, SAME)
            if expected is ERROR:
                with pytest.raises(SerializationError, match=f"with the {serializer} serializer"):
                    proxy.echo(value)
                continue
            result = proxy.echo(value)
            if expected is SAME:
                assert result == value and type(result) is type(value), (kind, result)
            else:
                assert result == expected, (kind, result)
        with pytest.raises(RemoteError) as error:
            proxy.fail("custom")
        assert (error.value.remote_type, error.value.message) == ("lonja.services.builtin.echo.EchoError", "custom")
        assert proxy.echo("the connection survives a serialization error") is not None


@pytest.mark.parametrize("serializer", sorted(CHANGES))
def test_batch(service, serializer):
    with connect("echo", ns=service, serializer=serializer) as proxy:
        with batch(proxy) as calls:
            for i in range(5):
                calls.echo(i)
            calls.slow(0, value="x")
        assert calls.results() == [0, 1, 2, 3, 4, "x"]

        with batch(proxy) as failing:
            failing.echo(1)
            failing.fail("stop here")
            failing.echo(3)
        with pytest.raises(RemoteError) as error:
            failing.results()
        assert error.value.remote_type == "lonja.services.builtin.echo.EchoError"
        assert error.value.results == [1]

        before = proxy.notified
        with batch(proxy, oneway=True) as oneway:
            for i in range(10):
                oneway.notify(i)
        assert oneway.results() == []
        from harness import wait_until
        assert wait_until(lambda: proxy.notified == before + 10)
