"""The standing adversarial suite: attack real lonja processes on 127.0.0.1 while a bystander keeps calling.

    python -m benchmarks.stress [--quick] [--out FILE.json] [--md FILE.md]

Each attack runs against a name server and `lonja serve echo` hosts started for the run (clean
environment, data in a temporary folder) while a bystander client calls `echo.echo(i)` and looks names
up; the table says whether the load held (the bystander saw no failure and no call slower than
LATENCY_BAR seconds), how many inputs were tried and survived, names lost, calls failed and the
bystander's worst latency. The pieces are in `stress_kit`; `tests/test_adversarial.py` is the fast subset.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .servers import clean_environment, remove_workdir

DEFAULT_OUT = "benchmarks/stress-results.json"
DEFAULT_MD = "benchmarks/STRESS.md"


@dataclass(frozen=True)
class Counts:
    """How much of each attack a run does."""

    random_inputs: int
    header_flips: int
    bomb_mb: int
    cap: int                 # limits.max_connections of the attacked servers
    flood_extra: int         # connections opened beyond the cap
    deadline: float          # limits.handshake_timeout and limits.receive_timeout of the attacked servers
    clients: tuple[int, ...]
    load_seconds: float
    churn_threads: int
    churn_seconds: float
    fault_seconds: float     # load around a kill -9 or a SIGSTOP
    stop_seconds: float      # how long an instance stays SIGSTOPped


QUICK = Counts(random_inputs=15, header_flips=15, bomb_mb=300, cap=64, flood_extra=16, deadline=1.0,
               clients=(50, 200), load_seconds=3.0, churn_threads=4, churn_seconds=3.0, fault_seconds=4.0,
               stop_seconds=2.0)
FULL = Counts(random_inputs=300, header_flips=300, bomb_mb=300, cap=64, flood_extra=64, deadline=2.0,
              clients=(50, 200), load_seconds=15.0, churn_threads=8, churn_seconds=20.0, fault_seconds=12.0,
              stop_seconds=5.0)


def progress(text: str) -> None:
    print(f"[stress] {text}", file=sys.stderr, flush=True)


def row(attack: str, held: bool | None, survived: int, tried: int, failed: int, worst: float | None,
        lost: int = 0, notes: str = "", **details: Any) -> dict[str, Any]:
    return {"attack": attack, "load_held": held, "faults_survived": survived, "inputs_tried": tried,
            "names_lost": lost, "calls_failed": failed, "worst_latency": worst, "notes": notes,
            "details": details}


class Run:
    """One run of every attack: the clusters it starts, and the rows it produces."""

    def __init__(self, counts: Counts, workdir: Path) -> None:
        from . import stress_kit as kit

        self.kit = kit
        self.counts = counts
        self.workdir = workdir
        self.clusters: list[Any] = []
        self.rows: list[dict[str, Any]] = []
        self.errors: list[dict[str, str]] = []
        self.killed: set[int] = set()
        """Pids this run stopped on purpose (kill -9): not counted as casualties."""

    def cluster(self, label: str, storage: str, **settings: Any) -> Any:
        cluster = self.kit.Cluster(self.workdir / label, self.kit.settings_env(**settings), storage)
        self.clusters.append(cluster)
        cluster.start_ns()
        cluster.start_echo()
        progress(f"cluster {label}: name server {cluster.ns}, echo at {cluster.echo_uri()} "
                 f"({' '.join(f'{k}={v}' for k, v in self.kit.settings_env(**settings).items())})")
        return cluster

    def held(self, bystander: Any, after_ok: bool = True) -> bool:
        return not bystander.failures and bystander.worst < self.kit.LATENCY_BAR and after_ok

    def phase(self, label: str, attack: Callable[[], None]) -> None:
        progress(f"attack: {label}")
        try:
            attack()
        except Exception as exc:  # the other attacks are still worth running; the exit code says it failed
            progress(f"{label} FAILED:\n{traceback.format_exc()}")
            self.errors.append({"attack": label, "error": f"{type(exc).__name__}: {exc}"})
        for cluster in self.clusters:
            for process in cluster.started:
                code = process.proc.poll()
                if code is not None and process.pid not in self.killed:
                    self.killed.add(process.pid)
                    tail = "\n".join(list(process.lines)[-15:])
                    progress(f"lonja {' '.join(process.args)} DIED during {label} (exit {code}):\n{tail}")
                    self.errors.append({"attack": label, "error": f"lonja {process.args[0]} (pid {process.pid}) "
                                        f"exited with {code} during this attack", "output": tail})

    def run(self) -> None:
        c = self.counts
        try:
            capped = self.cluster("capped", "memory", limits_max_connections=c.cap,
                                  limits_max_connections_per_peer=c.cap // 2, limits_handshake_timeout=c.deadline,
                                  limits_receive_timeout=c.deadline)
            self.phase("wire fuzzing", lambda: self.fuzzing(capped))
            self.phase("silent and slow connections", lambda: self.floods(capped))
            self.phase("registration churn", lambda: self.churn(capped))
            sqlite = f"sqlite:{self.workdir / 'open' / 'names.sqlite'}"
            open_ = self.cluster("open", sqlite, limits_max_connections=512, limits_max_connections_per_peer=0,
                                 limits_max_pending_per_peer=256)
            self.phase("concurrent clients", lambda: self.concurrency(open_))
            self.phase("kill -9 of the name server", lambda: self.kill_nameserver(open_))
            self.phase("kill -9 of an instance", lambda: self.instance_fault(open_, stop=False))
            self.phase("SIGSTOP of an instance", lambda: self.instance_fault(open_, stop=True))
        finally:
            for cluster in self.clusters:
                cluster.stop()
            self.clusters.clear()
        self.phase("damaged storage", self.storage)

    # -- the attacks ------------------------------------------------------------------------------------

    def fuzzing(self, cluster: Any) -> None:
        kit, c = self.kit, self.counts
        echo_uri = cluster.echo_uri()
        for label, address, object_id, pid in (("name server", cluster.ns_address, kit.NS_OBJECT,
                                                cluster.ns_process.pid),
                                               ("service host", kit.uri_address(echo_uri), "echo",
                                                cluster.hosts[0].pid)):
            probes = kit.fuzz_probes(object_id, c.random_inputs, c.header_flips, bomb_mb=c.bomb_mb,
                                     body_wait=c.deadline + 4)
            with kit.Bystander(cluster.ns) as bystander:
                result = kit.fuzz(address, object_id, probes, pid, deadline=90)
            after = kit.answers(cluster.ns, echo_uri)
            bomb = f"zlib bomb ({c.bomb_mb} MB)"
            notes = ["RSS peak: " + ", ".join(f"{label.replace(bomb, 'bomb')} +{max(0.0, mb):.0f} MB"
                                              for label, mb in result.growth_mb.items())]
            if result.hangs:
                notes.append(f"{len(result.hangs)} hang(s): " + "; ".join(result.hangs[:3]))
            if result.errors:
                notes.append(f"{len(result.errors)} error(s): {result.errors[0]}")
            if not result.server_alive:
                notes.append("SERVER DIED")
            self.rows.append(row(f"wire fuzzing: {label}", self.held(bystander, after), result.survived,
                                 len(probes), len(bystander.failures), bystander.worst, notes="; ".join(notes),
                                 bystander=bystander.summary(), outcomes=result.outcomes,
                                 growth_mb=result.growth_mb, answers_after=after))

    def floods(self, cluster: Any) -> None:
        kit, c = self.kit, self.counts
        echo_uri = cluster.echo_uri()
        count = c.cap + c.flood_extra
        for label, address in (("name server", cluster.ns_address), ("service host", kit.uri_address(echo_uri))):
            for source in (kit.HOST, kit.OTHER_PEER):
                fresh = source != kit.HOST  # from another peer, new connections from 127.0.0.1 must get through
                with kit.Bystander(cluster.ns, echo_uri, fresh=fresh) as bystander:
                    result = kit.flood(address, count, c.deadline + 3, source)
                after = kit.answers(cluster.ns, echo_uri)
                what = "silent/slow" if source == kit.HOST else "silent"
                notes = (f"{result.dropped} dropped ({result.dropped_at_once} at once, "
                         f"last at {result.slowest_drop} s), {result.too_many} told "
                         f"'too many connections', {result.refused_at_connect} refused at connect, "
                         f"{result.still_open} still open after {c.deadline + 3:.0f} s")
                if fresh:
                    notes += "; bystander: new connections from 127.0.0.1"
                self.rows.append(row(f"{what} connections from {source}: {label}", self.held(bystander, after),
                                     result.handled, count, len(bystander.failures), bystander.worst,
                                     notes=notes, bystander=bystander.summary(), flood=asdict(result),
                                     answers_after=after))

    def churn(self, cluster: Any) -> None:
        kit, c = self.kit, self.counts
        with kit.Bystander(cluster.ns) as bystander:
            ledger = kit.churn(cluster.ns, cluster.echo_uri(), c.churn_threads, c.churn_seconds)
        names = kit.listed(cluster.ns, "churn.")
        lost, ghosts = ledger.lost(names), ledger.ghosts(names)
        self.rows.append(row("registration churn", self.held(bystander), ledger.acknowledged,
                             ledger.acknowledged + ledger.failed, len(bystander.failures), bystander.worst,
                             lost=len(lost), notes=f"{ledger.acknowledged} changes acknowledged, {ledger.failed} "
                             f"failed, {len(ghosts)} removed names still listed",
                             bystander=bystander.summary(), lost_names=lost[:20], ghosts=ghosts[:20]))

    def concurrency(self, cluster: Any) -> None:
        kit, c = self.kit, self.counts
        for clients in c.clients:
            with kit.Bystander(cluster.ns) as bystander:
                load = kit.hammer(cluster.ns, clients, c.load_seconds)
            self.rows.append(row(f"{clients} concurrent clients", self.held(bystander) and not load.errors,
                                 clients - load.clients_with_errors, clients,
                                 len(load.errors) + len(bystander.failures),
                                 bystander.worst, notes=f"{load.calls} calls in {c.load_seconds:.0f} s, "
                                 f"slowest {load.worst} s" + (f"; {load.errors[0]}" if load.errors else ""),
                                 bystander=bystander.summary(), calls=load.calls, errors=load.errors[:10]))

    def kill_nameserver(self, cluster: Any) -> None:
        kit, c = self.kit, self.counts
        ledger = kit.Ledger()
        stop = threading.Event()
        uri = cluster.echo_uri()
        registrars = [threading.Thread(target=kit.register_until, args=(cluster.ns, uri, stop, ledger, f"durable.{t}."),
                                       daemon=True) for t in range(2)]
        with kit.Bystander(cluster.ns, lookups=False) as bystander:
            for thread in registrars:
                thread.start()
            try:
                time.sleep(c.fault_seconds / 2)
                before = ledger.acknowledged
                self.killed.add(cluster.ns_process.pid)
                cluster.ns_process.signal(signal.SIGKILL)
                cluster.ns_process.proc.wait(10)
                down = time.monotonic()
                cluster.start_ns()
                downtime = time.monotonic() - down
                time.sleep(c.fault_seconds / 2)
            finally:
                stop.set()
                for thread in registrars:
                    thread.join(10)
        lost = set(ledger.lost(kit.listed(cluster.ns, "durable.")))
        time.sleep(2.5)  # past the first sweep, which probes every entry reloaded from the file
        lost |= set(ledger.lost(kit.listed(cluster.ns, "durable.")))
        self.rows.append(row("kill -9 of the name server (sqlite)", self.held(bystander) and not lost,
                             ledger.acknowledged, ledger.acknowledged + ledger.failed, len(bystander.failures),
                             bystander.worst, lost=len(lost),
                             notes=f"{before} registrations acknowledged before the kill, "
                                   f"{ledger.acknowledged} in all; down {downtime:.1f} s",
                             bystander=bystander.summary(), lost_names=sorted(lost)[:20]))

    def instance_fault(self, cluster: Any, stop: bool) -> None:
        kit, c = self.kit, self.counts
        while len(cluster.hosts) < 3:
            cluster.start_echo()
        victim = cluster.hosts[-1]
        clients = 8

        def fault() -> None:
            time.sleep(c.fault_seconds / 4)
            if stop:
                victim.signal(signal.SIGSTOP)
                try:
                    time.sleep(c.stop_seconds)
                finally:
                    victim.signal(signal.SIGCONT)
            else:
                self.killed.add(victim.pid)
                victim.signal(signal.SIGKILL)
                victim.proc.wait(10)
                cluster.hosts.remove(victim)

        with kit.Bystander(cluster.ns) as bystander:
            load = kit.hammer(cluster.ns, clients, c.fault_seconds, during=fault)
        failed = len(load.errors)
        survived = failed <= clients and load.calls > 0
        label = f"SIGSTOP ({c.stop_seconds:.0f} s) of one of three instances" if stop else \
            "kill -9 of one of three instances"
        self.rows.append(row(label, self.held(bystander) and survived, int(survived), 1,
                             failed + len(bystander.failures), bystander.worst,
                             notes=f"{load.calls} calls by {clients} clients, {failed} failed (at most {clients} "
                                   f"in flight may), slowest {load.worst} s"
                                   + (f"; {load.errors[0]}" if load.errors else ""),
                             bystander=bystander.summary(), errors=load.errors[:10]))

    def storage(self) -> None:
        kit = self.kit
        folder = self.workdir / "damaged"
        env = kit.child_env(folder / "data")
        for label, store in kit.damaged_stores(folder).items():
            attempt = kit.try_start_ns(store, env, folder)
            verdict = "started (silently?)" if attempt.started else f"exit {attempt.exit_code}"
            first = attempt.output.strip().splitlines()[-1:] or [""]
            self.rows.append(row(f"damaged names.sqlite: {label}", None, int(attempt.refused_cleanly), 1, 0, None,
                                 notes=f"{verdict}: {first[0][:140]}", output=attempt.output[-2000:]))


def cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    if isinstance(value, float):
        return f"{value:.3f} s"
    return str(value)


def table(report: dict[str, Any]) -> str:
    lines = [f"## lonja adversarial suite{' (QUICK run)' if report['quick'] else ''}: "
             f"{report['seconds']} s, {time.strftime('%Y-%m-%d %H:%M', time.localtime(report['started']))}", "",
             f"Load held = the bystander saw no failure and no call over {report['latency_bar']} s, and the server "
             f"answered a new client afterwards.", "",
             "| attack | load held | faults survived | inputs tried | names lost | calls failed | "
             "worst bystander latency | notes |", "|---|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        lost = f"**{r['names_lost']}**" if r["names_lost"] else "0"
        lines.append(f"| {r['attack']} | {cell(r['load_held'])} | {r['faults_survived']} | {r['inputs_tried']} | "
                     f"{lost} | {r['calls_failed']} | {cell(r['worst_latency'])} | "
                     f"{r['notes'].replace('|', '/')} |")
    for e in report["errors"]:
        lines.append(f"\n**{e['attack']} failed**: {e['error']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stress", description="lonja under attack: "
                                     "fuzzing, floods, load, churn, kill -9, SIGSTOP and damaged storage.")
    parser.add_argument("--quick", action="store_true", help="small counts: every attack in well under two minutes")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"where to write the JSON (default: {DEFAULT_OUT})")
    parser.add_argument("--md", default=DEFAULT_MD, help=f"where to write the table (default: {DEFAULT_MD})")
    args = parser.parse_args(argv)

    workdir = clean_environment()  # before Pyro5 or lonja is imported: they read the environment

    def terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, terminate)
    counts = QUICK if args.quick else FULL
    started = time.time()
    run = Run(counts, workdir)
    try:
        run.run()
    except KeyboardInterrupt:
        progress("interrupted: the servers were stopped")
        return 130
    finally:
        remove_workdir(workdir)
    from . import report as bench_report
    from . import stress_kit as kit

    out = {"quick": args.quick, "started": started, "seconds": round(time.time() - started, 1),
           "machine": bench_report.machine(), "counts": asdict(counts), "latency_bar": kit.LATENCY_BAR,
           "known_settings": sorted(k for k in kit.known_settings() if k.startswith("limits.")),
           "errors": run.errors, "rows": run.rows}
    text = table(out)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2, default=str) + "\n")
    Path(args.md).write_text(text + "\n")
    progress(f"wrote {args.out} and {args.md} ({out['seconds']} s)")
    return 1 if run.errors else 0


if __name__ == "__main__":
    sys.exit(main())
