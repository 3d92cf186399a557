"""Services of a user's own for the reference and callback tests (issue 10 §1–§2): carts that stay on the
server, and a newsroom that calls its clients back."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

from lonja.clients import CallTimeout, ServiceUnreachable, uri
from lonja.services import expose, oneway, remote, service, share


class Cart:
    """A shopping cart that stays on the server."""

    def __init__(self, owner: str = "") -> None:
        self.owner = owner
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self.noted = 0

    def add(self, item: str) -> int:
        """Add `item`; returns how many lines the cart has."""
        with self._lock:
            self.lines.append(item)
            return len(self.lines)

    def items(self) -> list[str]:
        return list(self.lines)

    @oneway
    def note(self) -> None:
        with self._lock:
            self.noted += 1

    def notes(self) -> int:
        return self.noted

    def walk(self) -> Iterator[str]:
        yield from list(self.lines)

    def slow(self, seconds: float) -> float:
        time.sleep(seconds)
        return seconds


@remote
class Coupon:
    """Every instance goes by reference (the class is @remote)."""

    def __init__(self, percent: int) -> None:
        self.percent = percent

    def value(self) -> int:
        return self.percent


@expose
class Registered:
    """Registered on the daemon by the service itself: Pyro5's autoproxy sends it."""

    def __init__(self) -> None:
        self.calls = 0

    def hit(self) -> int:
        self.calls += 1
        return self.calls


@service("carts")
class Carts:
    """Hands out carts by reference."""

    def __init__(self) -> None:
        self.kept: list[Any] = []
        self.registered: Registered | None = None

    def new(self, owner: str = "") -> Cart:
        return share(Cart(owner))

    def many(self, count: int) -> list[Cart]:
        return [share(Cart(str(i))) for i in range(count)]

    def by_owner(self, *owners: str) -> dict[str, Cart]:
        return {owner: share(Cart(owner)) for owner in owners}

    def kept_cart(self) -> Cart:
        """The same cart each time."""
        if not self.kept:
            self.kept.append(Cart("kept"))
        return share(self.kept[0])

    def coupon(self, percent: int) -> Coupon:
        return Coupon(percent)

    def stream(self, count: int) -> Iterator[Cart]:
        for i in range(count):
            yield share(Cart(f"streamed{i}"))

    def pyro_registered(self) -> Registered:
        if self.registered is None:
            self.registered = Registered()
            self._pyroDaemon.register(self.registered)  # type: ignore[attr-defined]
        return self.registered

    def is_kept(self, cart: Any) -> bool:
        """True if `cart` arrived as the very cart `kept_cart` hands out (not a copy, not a proxy)."""
        return bool(self.kept) and cart is self.kept[0]

    def kind_of(self, value: Any) -> str:
        return f"{type(value).__module__}.{type(value).__qualname__}"

    def add_through(self, cart: Any, item: str) -> int:
        """Call `cart.add(item)` on whatever arrived (a local cart or a proxy of another host's)."""
        return int(cart.add(item))

    def shared(self) -> int:
        return int(self._pyroDaemon.stats()["shared"])  # type: ignore[attr-defined]


@service("news")
class News:
    """Calls its clients back: progress during a call, and deliveries to subscribers afterwards."""

    def __init__(self) -> None:
        self.subscribers: list[Any] = []
        self.lock = threading.Lock()
        self.dropped: list[str] = []

    def work(self, steps: int, listener: Any) -> int:
        """Report each step to `listener.progress` (plain) and `listener.tick` (oneway); returns the sum of
        what `progress` answered."""
        total = 0
        for step in range(steps):
            total += listener.progress(step)
            listener.tick.oneway(step)
        return total

    def twice(self, value: int, listener: Any) -> int:
        """A round trip service -> client -> service: the listener's answer, doubled."""
        return 2 * listener.progress(value)

    def subscribe(self, subscriber: Any) -> int:
        with self.lock:
            self.subscribers.append(subscriber)
            return len(self.subscribers)

    def unsubscribe(self, subscriber: Any) -> int:
        """Cancel the subscription of `subscriber` (the same object as subscribed, passed again)."""
        with self.lock:
            self.subscribers = [s for s in self.subscribers if uri(s) != uri(subscriber)]
            return len(self.subscribers)

    def cancel_all(self) -> None:
        with self.lock:
            self.subscribers = []

    def publish(self, message: str, timeout: float = 5.0) -> dict[str, int]:
        """Deliver `message` to every subscriber; one that is gone or hangs (past `timeout`) is dropped."""
        with self.lock:
            subscribers = list(self.subscribers)
        delivered = unreachable = timed_out = 0
        for subscriber in subscribers:
            try:
                subscriber.deliver.options(timeout=timeout)(message)
                delivered += 1
            except ServiceUnreachable as exc:
                timed_out += isinstance(exc, CallTimeout)
                unreachable += not isinstance(exc, CallTimeout)
                with self.lock:
                    self.subscribers = [s for s in self.subscribers if s is not subscriber]
        return {"delivered": delivered, "unreachable": unreachable, "timed_out": timed_out,
                "subscribers": len(self.subscribers)}

    def count(self) -> int:
        return len(self.subscribers)
