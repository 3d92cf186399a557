"""A client process that holds references or callback subscriptions until it is killed (issue 10 §1–§2
tests): `python reference_holder.py NS carts COUNT` takes COUNT carts; `... NS news` subscribes a
listener (and, with `hang`, one whose deliveries never return)."""

from __future__ import annotations

import sys
import threading

from lonja.clients import connect, share


class Listener:
    def __init__(self, hang: bool) -> None:
        self.hang = hang

    def deliver(self, message: str) -> None:
        if self.hang:
            threading.Event().wait()


def main() -> None:
    ns, what = sys.argv[1], sys.argv[2]
    if what == "carts":
        carts = connect("carts", ns=ns)
        held = carts.many(int(sys.argv[3]))
        print(f"holding {len(held)}", flush=True)
    else:
        news = connect("news", ns=ns)
        listener = Listener(hang="hang" in sys.argv[3:])
        news.subscribe(share(listener))
        print("subscribed", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
