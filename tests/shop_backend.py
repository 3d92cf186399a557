"""The shop service's ledger (`tests/shop_service.py`): a module test clients never import, so its
exception arrives as a RemoteError named after it rather than as its class."""

from __future__ import annotations


class LedgerLocked(RuntimeError):
    """The ledger is locked: raised by `ledger_write`, always."""

    def __init__(self, message: str, holder: str) -> None:
        super().__init__(message)
        self.holder = holder
        self.where = "vault"  # a name lonja's RemoteError must not take for itself


def ledger_write(order: str) -> None:
    raise LedgerLocked(f"the ledger is locked, cannot write {order}", holder="night-batch")
