"""Which instance gets the next call: the least busy one that has not gone silent.

Every proxy in the process shares one `InstanceHealth`, keyed by instance URI. A call goes to the instance
with the fewest calls in flight (round robin among equals), so an instance that stops answering collects
at most a few stuck calls. An instance is *suspect* when it owes an answer for longer than
`SUSPECT_AFTER` seconds and has answered nothing in that time, or when connecting to it or a call to it
timed out. New calls skip suspects while any instance is not suspect; when all are, they still go to them.
A suspect is trusted again as soon as it answers: a call to it completes, or the background ping that
`choose` starts for it succeeds (so a host that is merely busy with slow calls keeps getting work).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable

SUSPECT_AFTER = 1.0


class InstanceHealth:
    """Calls in flight, last answers and timeouts per instance URI, and the choice made from them."""

    def __init__(self, suspect_after: float = SUSPECT_AFTER) -> None:
        self.suspect_after = suspect_after
        self._lock = threading.Lock()
        self._in_flight: dict[str, dict[int, float]] = {}   # uri -> {call number: start time}
        self._answered: dict[str, float] = {}               # uri -> time of its latest answer
        self._timed_out: set[str] = set()
        self._probed: dict[str, float] = {}                 # uri -> start of its latest background ping
        self._probing: set[str] = set()
        self._numbers = itertools.count()
        self._turn = itertools.count()

    def started(self, uri: str) -> int:
        """Count a call to `uri` as in flight until `ended(uri, call)`; returns the call's number."""
        number = next(self._numbers)
        with self._lock:
            self._in_flight.setdefault(uri, {})[number] = time.monotonic()
        return number

    def ended(self, uri: str, call: int, answered: bool = False) -> None:
        """The call numbered `call` to `uri` is over, however it ended (`answered`: with `uri`'s answer)."""
        with self._lock:
            if answered:
                self._note_answer(uri)
            calls = self._in_flight.get(uri)
            if calls is not None:
                calls.pop(call, None)
                if not calls:
                    del self._in_flight[uri]

    def answered(self, uri: str) -> None:
        """`uri` just answered something: it is alive, whatever it said."""
        with self._lock:
            self._note_answer(uri)

    def _note_answer(self, uri: str) -> None:  # under the lock
        self._answered[uri] = time.monotonic()
        self._timed_out.discard(uri)

    def timed_out(self, uri: str) -> None:
        """Connecting to `uri`, or a call to it, timed out: skip it until it answers again."""
        with self._lock:
            self._timed_out.add(uri)

    def suspect(self, uri: str) -> bool:
        """True if `uri` timed out, or owes an answer for a while and has said nothing for as long."""
        with self._lock:
            return self._suspect(uri, time.monotonic())

    def in_flight(self, uri: str) -> int:
        """How many calls to `uri` are under way."""
        with self._lock:
            return len(self._in_flight.get(uri, ()))

    def choose(self, uris: list[str], probe: Callable[[str], object]) -> str:
        """The instance of `uris` for the next call; starts `probe(uri)` in the background for suspects.

        `probe` should raise (or time out) unless the instance answers; its success clears the suspicion.
        """
        if len(uris) == 1:
            return uris[0]
        now = time.monotonic()
        with self._lock:
            suspects = [uri for uri in uris if self._suspect(uri, now)]
            to_probe = [uri for uri in suspects if uri not in self._probing
                        and now - self._probed.get(uri, -self.suspect_after) >= self.suspect_after]
            for uri in to_probe:
                self._probing.add(uri)
                self._probed[uri] = now
            trusted = [uri for uri in uris if uri not in suspects] or uris
            fewest = min(len(self._in_flight.get(uri, ())) for uri in trusted)
            least_busy = [uri for uri in trusted if len(self._in_flight.get(uri, ())) == fewest]
            chosen = least_busy[next(self._turn) % len(least_busy)]
        for uri in to_probe:
            threading.Thread(target=self._probe, args=(uri, probe), name="lonja-probe", daemon=True).start()
        return chosen

    def _suspect(self, uri: str, now: float) -> bool:
        if uri in self._timed_out:
            return True
        calls = self._in_flight.get(uri)
        if not calls:
            return False
        owing_since = min(calls.values())
        return now - owing_since > self.suspect_after and now - self._answered.get(uri, 0.0) > self.suspect_after

    def _probe(self, uri: str, probe: Callable[[str], object]) -> None:
        try:
            probe(uri)
        except Exception:
            return
        else:
            self.answered(uri)
        finally:
            with self._lock:
                self._probing.discard(uri)


_shared = InstanceHealth()


def shared_health() -> InstanceHealth:
    """The process-wide health record every proxy consults."""
    return _shared
