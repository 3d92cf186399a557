"""What the benchmark measures: every row (id, title, unit, warm/cold, which systems) with issue 9's goal for
it, and how much work each row does in a full and in a quick run.

Modes: single-client rows (warm and cold) are measured twice per round, "unpinned" (as users run them, the
scheduler places client and server) and "pinned" (server on CPU 1, client on CPU 0); the client-process
rows only unpinned. Goals are judged on the unpinned figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .callers import SYSTEMS

MODES = ["unpinned", "pinned"]
PEERS = [s for s in SYSTEMS if s != "lonja"]
NOT_MSGPACK = ["pyro5", "rpyc", "lonja"]      # rows where a msgpack client adds nothing: same server, NS, imports


@dataclass(frozen=True)
class Counts:
    """How much work each row does per round and mode: tiny for --quick, the issue's counts otherwise."""

    rounds: int            # rounds (every system: fresh servers and client processes each round)
    calls: int             # small calls timed one by one (median, p99)
    warmup: int            # calls before any timing, in every warm client
    oneway: int            # oneway calls, until the server counted them all
    payload: int           # 100 KB echoes
    batches: int           # batches of 100 echo calls
    at_once: int           # aio calls / futures at once, and one by one
    first_calls: int       # fresh (forked) processes per kind (by name, by address)
    startups: int          # new interpreters per kind (imports; imports + first call); about a third
                           # of them take 15-60 ms longer on this VM, for every system: a median of 7
                           # is not moved by 3 such
    names: int             # name-server registrations, then lookups
    load_seconds: float    # each client-process measurement (1 and 8 processes)


FULL = Counts(rounds=5, calls=10_000, warmup=500, oneway=10_000, payload=100, batches=20, at_once=1000,
              first_calls=4, startups=7, names=2000, load_seconds=1.5)
QUICK = Counts(rounds=1, calls=300, warmup=50, oneway=300, payload=5, batches=2, at_once=100,
               first_calls=1, startups=1, names=100, load_seconds=0.3)


@dataclass(frozen=True)
class Goal:
    """A goal from issue 9, judged on lonja's unpinned figures.

    `vs`: peer -> (op, bar) on lonja's median ÷ the peer's median; `own`: (op, bar) on lonja's own value,
    taken as the median (`every_round=False`) or in every round (the worst round must meet it);
    `keep`: lonja ≥ `keep` × the best peer's median (a standing to keep, not a new bar).
    """

    text: str
    vs: dict[str, tuple[str, float]] = field(default_factory=dict)
    own: tuple[str, float] | None = None
    every_round: bool = False
    keep: float | None = None


@dataclass(frozen=True)
class Row:
    id: str
    title: str
    unit: str
    kind: str                  # "warm", "cold" (a fresh process) or "processes" (client processes, unpinned)
    higher_is_better: bool
    systems: list[str] = field(default_factory=lambda: list(SYSTEMS))
    goal: Goal | None = None
    peers_from: str | None = None  # a lonja-only row whose peers' figures (and ratios) are another row's

    @property
    def modes(self) -> list[str]:
        return ["unpinned"] if self.kind == "processes" else MODES


KEEP = 0.90
ROWS = [
    Row("call.median", "small call, median", "µs", "warm", False,
        goal=Goal("≤ 0.70× Pyro5, ≤ 1.00× Pyro5+msgpack, ≤ 0.90× RPyC",
                  vs={"pyro5": ("<=", 0.70), "pyro5-msgpack": ("<=", 1.00), "rpyc": ("<=", 0.90)})),
    Row("call.p99", "small call, p99", "µs", "warm", False),
    Row("call.median.tcp", "small call, median, lonja over TCP (local socket off; peers: the row above)", "µs",
        "warm", False, ["lonja"], peers_from="call.median"),
    Row("call.median.sleeping", "small call, median, lonja client not busy-waiting (client.busy_wait 0; the host "
        "still polls; peers: the row above)", "µs", "warm", False, ["lonja"], peers_from="call.median"),
    Row("oneway.completions", "oneway completions/s", "calls/s", "warm", True,
        goal=Goal("≥ RPyC", vs={"rpyc": (">=", 1.0)})),
    Row("oneway.issue", "oneway calls issued/s (client side)", "calls/s", "warm", True),
    Row("aio.echo", "1,000 aio calls of echo at once ÷ one by one", "×", "warm", True, ["lonja"],
        Goal("≥ 2× in every round", own=(">=", 2.0), every_round=True)),
    Row("aio.slow", "1,000 aio calls of slow(0.002) at once ÷ one by one", "×", "warm", True, ["lonja"],
        Goal("≥ 2× in every round", own=(">=", 2.0), every_round=True)),
    Row("futures.echo", "1,000 futures of echo at once ÷ one by one", "×", "warm", True, ["lonja"],
        Goal("≥ 2× in every round", own=(">=", 2.0), every_round=True)),
    Row("futures.slow", "1,000 futures of slow(0.002) at once ÷ one by one", "×", "warm", True, ["lonja"],
        Goal("≥ 2× in every round", own=(">=", 2.0), every_round=True)),
    Row("first_call.ratio", "first call by name ÷ by address, fresh process", "×", "cold", False, NOT_MSGPACK,
        Goal("≤ 1.3×", own=("<=", 1.3))),
    Row("first_call.name", "first call by name, fresh process", "ms", "cold", False, NOT_MSGPACK),
    Row("first_call.address", "first call by address, fresh process", "ms", "cold", False, NOT_MSGPACK),
    Row("startup.call", "new interpreter + imports + first call by name", "ms", "cold", False, NOT_MSGPACK,
        Goal("≤ Pyro5 + 20 %", vs={"pyro5": ("<=", 1.20)})),
    Row("startup.imports", "new interpreter + imports", "ms", "cold", False, NOT_MSGPACK),
    Row("ns.registrations", "name server: registrations/s (memory)", "/s", "warm", True, ["pyro5", "lonja"],
        Goal("≥ Pyro5", vs={"pyro5": (">=", 1.0)})),
    Row("ns.lookups", "name server: lookups/s (memory)", "/s", "warm", True, ["pyro5", "lonja"]),
    # What many clients get is judged by their total calls/s: the ratio to one client falls whenever a
    # single client gets quicker (lonja's busy wait doubled it), though no one is served worse.
    Row("clients.8", "8 client processes: total calls/s", "calls/s", "processes", True,
        goal=Goal(f"keep: ≥ {KEEP:.2f}× the best peer", keep=KEEP)),
    Row("clients.1", "1 client process: calls/s", "calls/s", "processes", True),
    Row("clients.scale8", "8 client processes ÷ 1 (total calls/s)", "×", "processes", True),
    Row("payload.100KB", "100 KB bytes echo", "MB/s", "warm", True,
        goal=Goal(f"keep: ≥ {KEEP:.2f}× the best peer", keep=KEEP)),
    Row("batch.100", "batch of 100 echo calls (RPyC has none)", "calls/s", "warm", True,
        ["pyro5", "pyro5-msgpack", "lonja"]),
]
BY_ID = {row.id: row for row in ROWS}
