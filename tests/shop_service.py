"""A service of a user's own for the tests of remote objects that behave like local ones
(`tests/test_objects_like_local.py`): docs, signatures, attributes, exceptions of its own with attributes
and causes. Served with `lonja serve shop_service:Shop` (tests/ on PYTHONPATH)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from lonja.services import service


class OutOfStock(Exception):
    """Raised by `Shop.buy` when there is not enough of an item; the client can import this class."""

    def __init__(self, sku: str, left: int) -> None:
        super().__init__(sku, left)
        self.sku = sku
        self.left = left

    def __str__(self) -> str:
        return f"{self.sku}: only {self.left} left"


class CheckoutFailed(Exception):
    """Raised by `Shop.checkout`, caused by the ledger's error."""


@service("shop")
class Shop:
    """A small shop: stock by SKU, orders, and errors of its own.

    Buying more than is in stock raises OutOfStock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stock = {"apple": 3, "pear": 0}
        self._currency = "EUR"

    def buy(self, sku: str, count: int = 1, *, note: str = "") -> int:
        """Buy `count` of `sku`; returns how many are left.

        Raises OutOfStock if there are fewer than `count`.
        """
        with self._lock:
            left = self._stock.get(sku, 0)
            if left < count:
                raise OutOfStock(sku, left)
            self._stock[sku] = left - count
            return left - count

    def checkout(self, order: str) -> None:
        """Write `order` to the ledger (which is always locked: raises CheckoutFailed from LedgerLocked)."""
        from shop_backend import LedgerLocked, ledger_write  # here, so that clients importing this module don't

        try:
            ledger_write(order)
        except LedgerLocked as exc:
            raise CheckoutFailed(f"order {order} not written") from exc

    def wait(self, seconds: float) -> float:
        """Sleep `seconds` and return them."""
        time.sleep(seconds)
        return seconds

    def items(self, count: int) -> Iterator[int]:
        """Stream 0..count-1."""
        yield from range(count)

    @property
    def currency(self) -> str:
        """The currency prices are in."""
        return self._currency

    @currency.setter
    def currency(self, value: str) -> None:
        self._currency = value

    @property
    def opened(self) -> int:
        """The year the shop opened."""
        return 1987
