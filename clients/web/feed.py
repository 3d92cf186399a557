"""The name server's change log, followed once per token and fanned out to every open page.

One thread per distinct token (anonymous pages share one) long-polls `lonja_changes` and hands each event
to the subscribers' asyncio queues. It also says whether the name server answers: an `ns` event when that
changes, and a `reset` when it is back (or when the log moved on past what a page has seen), so pages reload
the list. The thread ends once its last subscriber has gone.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from lonja.config import Settings

from ..errors import LonjaError
from .operations import ns_client

POLL = 5.0        # seconds one long poll of the change log may wait
RETRY = 1.0       # seconds between attempts while the name server is away
QUEUE_LIMIT = 2000  # events a slow page may fall behind by before it is told to reload instead

Event = tuple[str, dict[str, Any]]
"""(kind, data): kind is "change", "reset", "ns", or "" when the feed is closing."""


class Subscriber:
    """One open page (an SSE response) waiting for events on its own event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, prefix: str = "") -> None:
        self.loop = loop
        self.prefix = prefix
        self.queue: asyncio.Queue[Event] = asyncio.Queue()

    def put(self, event: Event) -> None:
        """Hand `event` over from any thread."""
        kind, data = event
        if kind == "change" and not str(data.get("name", "")).startswith(self.prefix):
            return
        try:
            self.loop.call_soon_threadsafe(self._put, event)
        except RuntimeError:
            pass  # its loop is closed: the page is gone

    def _put(self, event: Event) -> None:
        if self.queue.qsize() >= QUEUE_LIMIT:
            while not self.queue.empty():
                self.queue.get_nowait()
            event = ("reset", {"why": "too far behind"})
        self.queue.put_nowait(event)


class ChangeFeed:
    """The change log as seen with one token, followed by one thread while anyone subscribes."""

    def __init__(self, settings: Settings, token: str, on_idle: Callable[[ChangeFeed], None]) -> None:
        self.settings = settings
        self.token = token
        self.state: dict[str, Any] = {}
        self._subscribers: set[Subscriber] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._on_idle = on_idle
        self._thread = threading.Thread(target=self._run, name="lonja-web-feed", daemon=True)
        self._thread.start()

    def add(self, subscriber: Subscriber) -> None:
        with self._lock:
            self._subscribers.add(subscriber)
            state = dict(self.state)
        if state:
            subscriber.put(("ns", state))

    def remove(self, subscriber: Subscriber) -> bool:
        """Drop one subscriber; True if none is left (the feed then stops)."""
        with self._lock:
            self._subscribers.discard(subscriber)
            idle = not self._subscribers
        if idle:
            self._stop.set()
        return idle

    def stop(self) -> None:
        self._stop.set()
        self._publish(("", {}))

    def _publish(self, event: Event) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            subscriber.put(event)

    def _set_state(self, up: bool, live: bool, message: str = "") -> None:
        state = {"up": up, "live": live, "message": message, "ns": self.settings.ns_address}
        with self._lock:
            before, self.state = self.state, state
        if before != state:
            self._publish(("ns", state))
            if up and before and not before.get("up"):
                self._publish(("reset", {"why": "the name server is back"}))

    def _run(self) -> None:
        ns = None
        since: int | None = None
        try:
            while not self._stop.is_set():
                try:
                    if ns is None:
                        ns = ns_client(self.settings, self.token, wait=POLL)
                    if not ns.is_lonja():
                        ns.ping()
                        self._set_state(up=True, live=False)
                        self._stop.wait(RETRY * 2)
                        continue
                    if since is None:
                        since = ns.changes(-1, 0)["seq"]
                        self._set_state(up=True, live=True)
                    answer = ns.changes(since, POLL)
                    if answer.get("reset"):
                        self._publish(("reset", {"why": "missed some changes", "seq": answer["seq"]}))
                    since = answer["seq"]
                    for change in answer["events"]:
                        self._publish(("change", change))
                except LonjaError as exc:  # unreachable, or the token refused: the page shows why
                    self._set_state(up=False, live=bool(self.state.get("live", True)), message=exc.one_line())
                    since = None
                    if ns is not None:
                        ns.close()
                        ns = None
                    self._stop.wait(RETRY)
        finally:
            if ns is not None:
                ns.close()
            self._on_idle(self)


class Feeds:
    """The change feeds of one web console, by token."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._feeds: dict[str, ChangeFeed] = {}
        self._lock = threading.Lock()

    def subscribe(self, token: str, prefix: str = "") -> tuple[ChangeFeed, Subscriber]:
        """A new subscriber on the running loop, fed by the feed for `token` (started if needed)."""
        subscriber = Subscriber(asyncio.get_running_loop(), prefix)
        with self._lock:
            feed = self._feeds.get(token)
            if feed is None:
                feed = self._feeds[token] = ChangeFeed(self.settings, token, self._forget)
            feed.add(subscriber)
        return feed, subscriber

    def unsubscribe(self, feed: ChangeFeed, subscriber: Subscriber) -> None:
        with self._lock:
            if feed.remove(subscriber) and self._feeds.get(feed.token) is feed:
                del self._feeds[feed.token]

    def close(self) -> None:
        """Stop every feed and end every subscriber's stream."""
        with self._lock:
            feeds, self._feeds = list(self._feeds.values()), {}
        for feed in feeds:
            feed.stop()

    def _forget(self, feed: ChangeFeed) -> None:
        with self._lock:
            if self._feeds.get(feed.token) is feed:
                del self._feeds[feed.token]
