"""The name server from the terminal: `lonja ls`, `watch`, `register`, `remove` and `meta`.

Names are chosen by a PATTERN (a prefix, a glob when it has `*?[`, or a regex, matched from the start as
Pyro5's name server matches one), by tags and by status, as `selection` filters one listing.
Writes go through the name server's own access control: each presents this process's token.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .errors import AccessDenied, NameNotFound, NameServerUnreachable, UsageError
from .selection import STATUSES, Pattern, Selection, instances, listing, parse_status, select

if TYPE_CHECKING:
    from lonja.config import Settings

    from .naming import NameServerClient

NS_NAME = "Pyro.NameServer"
ELLIPSIS = "…"
RECONNECT_FIRST, RECONNECT_CAP = 0.1, 2.0
CONFIRM_SHOWS = 10
MIN_NAME, MIN_ADDRESS = 12, 24
PATTERN_HELP = "a name prefix, or a glob if it has * ? [ (quote it: 'market.*.stall0?')"

State = dict[tuple[str, str], str]
"""What a watcher knows: (name, uri) -> status."""


def selection_of(args: argparse.Namespace) -> Selection:
    """The selection a command line asks for; a UsageError for a bad regex or status."""
    if args.regex:
        patterns: tuple[Pattern, ...] = (regex_pattern(args.pattern or ""),)
    else:
        patterns = (Pattern.of(args.pattern),) if args.pattern else ()
    statuses = tuple(parse_status(word) for word in getattr(args, "status", None) or ())
    return Selection(patterns, tuple(getattr(args, "meta", None) or ()), tuple(getattr(args, "any_meta", None) or ()),
                     statuses)


def regex_pattern(text: str) -> Pattern:
    """The pattern of the regex `text`; a UsageError if there is none or it is not a regex."""
    if not text:
        raise UsageError("--regex needs a PATTERN, e.g. `lonja ls --regex 'market\\.(fish|fruit)'`")
    return Pattern(text, "regex")


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add ls, watch, register, remove and meta to the `lonja` parser."""
    ls = commands.add_parser(
        "ls", parents=[common], help="list the names in the name server",
        description="List registered names, their instances (status, last seen, address) and tags. "
                    "ADDRESS is HOST:PORT when the object's id is its name, else OBJECT@HOST:PORT; --json has the "
                    "whole URIs. No name selected: exit 3.")
    _add_pattern(ls)
    ls.add_argument("--meta", action="append", metavar="TAG", help="only names with this tag (repeat: all of them)")
    ls.add_argument("--any-meta", action="append", metavar="TAG", help="only names with any of these tags")
    ls.add_argument("--status", action="append", metavar="STATUS",
                    help="only instances with this status: serving, not-serving, unreachable, unknown (repeat: any)")
    output = ls.add_mutually_exclusive_group()
    output.add_argument("--names", action="store_true", help="print the names only, one a line")
    output.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(run=run_ls)

    watch = commands.add_parser(
        "watch", parents=[common], help="print name server changes as they happen",
        description="Print the matching names, then each one added, removed or changing status, until Ctrl-C. "
                    "If the name server goes away, reconnect and print what changed meanwhile.")
    _add_pattern(watch)
    watch.add_argument("--json", action="store_true", help="print one JSON object a line")
    watch.add_argument("--no-snapshot", action="store_true", help="print changes only, not the names there are")
    watch.set_defaults(run=run_watch)

    add = commands.add_parser(
        "register", parents=[common], help="register a name for a URI",
        description="Register NAME for URI as a plain Pyro5 registration (no lease: the name server probes it). "
                    "An existing plain registration of NAME is replaced; a name a live lonja host serves is not.")
    add.add_argument("name", metavar="NAME")
    add.add_argument("uri", metavar="URI", help="e.g. PYRO:obj_12ab@127.0.0.1:40211")
    add.add_argument("--meta", action="append", metavar="TAG", help="a tag (repeatable)")
    add.set_defaults(run=run_register)

    remove = commands.add_parser(
        "remove", parents=[common], help="remove names from the name server",
        description="Remove one name, or every name with a prefix or matching a regex. Before removing more than "
                    "one, ask on the terminal (--yes: do not ask). Nothing is removed without a NAME or filter.")
    which = remove.add_mutually_exclusive_group()
    which.add_argument("name", nargs="?", metavar="NAME")
    which.add_argument("--prefix", metavar="P", help="every name starting with P")
    which.add_argument("--regex", metavar="R", help="every name R matches from its start")
    remove.add_argument("--yes", "-y", action="store_true", help="do not ask before removing several names")
    remove.set_defaults(run=run_remove)

    meta = commands.add_parser(
        "meta", parents=[common], help="show or change a name's tags",
        usage="lonja meta [-h] [--ns HOST:PORT] [--config FILE] [--data-dir DIR] [--debug] NAME [+TAG|-TAG ...]",
        description="Show the tags of NAME, or change them: +TAG adds a tag, -TAG removes one. Words after `--` "
                    "are changes only, for a -TAG that looks like an option: lonja meta NAME -- -h --ns.")
    meta.add_argument("words", nargs=argparse.REMAINDER, metavar="NAME [+TAG|-TAG ...]", action=_MetaWords,
                      help="the name, then any number of changes",
                      globals_parser=argparse.ArgumentParser(parents=[common], add_help=False, allow_abbrev=False))
    meta.set_defaults(run=run_meta)


def _add_pattern(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pattern", nargs="?", metavar="PATTERN", help=PATTERN_HELP)
    parser.add_argument("--regex", action="store_true", help="PATTERN is a regex, matched from the start of the name")


class _MetaWords(argparse.Action):
    """The words of `lonja meta`: NAME, its +TAG and -TAG changes, and the global options given among them.

    argparse reads a word like `-team:x` as an unknown option, so every word after the subcommand comes
    here as is; global options are picked out of the words before `--`, and `-h`/`--help` show the help.
    """

    def __init__(self, option_strings: Sequence[str], dest: str, globals_parser: argparse.ArgumentParser,
                 **kwargs: Any) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.globals_parser = globals_parser

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        words = list(values)
        tail: list[str] = []
        if "--" in words:
            words, tail = words[:words.index("--")], words[words.index("--") + 1:]
        if "-h" in words or "--help" in words:
            parser.print_help()
            parser.exit()
        options, rest = self.globals_parser.parse_known_args(words)
        for key, value in vars(options).items():
            setattr(namespace, key, value)
        rest += tail
        if not rest or rest[0].startswith(("+", "-")):
            parser.error("NAME is required first: lonja meta NAME [+TAG|-TAG ...]")
        namespace.name, namespace.changes = rest[0], rest[1:]


# -- ls -----------------------------------------------------------------------------------------------

def run_ls(args: argparse.Namespace, settings: Settings) -> int:
    """`lonja ls`: the selected names as a table, names only, or JSON; exit 3 if none."""
    selection = selection_of(args)
    with _client(settings) as ns:
        entries = select(listing(ns, selection.server_prefix), selection)
    if args.json:
        _print_json(entries)
    if not entries:
        raise NameNotFound(f"no {selection.describe()}" +
                           ("" if selection == Selection() else ": `lonja ls` lists them all"))
    if args.names:
        for name in entries:
            print(_printable(name))
    elif not args.json:
        tty = sys.stdout.isatty()
        for line in table(entries, shutil.get_terminal_size().columns if tty else None):
            print(line)
    return 0


def table(entries: dict[str, dict[str, Any]], width: int | None) -> list[str]:
    """A header, a row per instance (the name on its first row only) and a count line.

    With a `width` (a terminal's), long names, addresses and tags are cut with an ellipsis to fit it.
    """
    now = time.time()
    rows = []
    for name, entry in entries.items():
        tags = " ".join(tag for tag in entry["metadata"] if not tag.startswith("class:"))
        for index, instance in enumerate(instances(entry)):
            seen = _ago(now - instance["last_seen"]) if instance.get("last_seen") else "never"
            rows.append((_printable(name) if index == 0 else "", instance["status"], seen,
                         _printable(address(name, instance["uri"])), _printable(tags) if index == 0 else ""))
    header = ("NAME", "STATUS", "SEEN", "ADDRESS", "TAGS")
    widths = [max([len(header[c])] + [len(row[c]) for row in rows]) for c in range(5)]
    if width is not None:
        widths = _fit(widths, width)
    lines = [_row(header, widths)] + [_row(row, widths) for row in rows]
    return [*lines, _count(entries)]


def _fit(widths: list[int], width: int) -> list[int]:
    """Column widths within `width` if they can be: tags give way first, then long names (down to two
    fifths of the room), then addresses (down to what keeps HOST:PORT whole), then names, then addresses."""
    name, status, seen, where, tags = widths
    room = width - status - seen - 2 * 4
    if name + where + tags <= room:
        return widths
    tags_room = min(tags, max(len("TAGS"), room // 5))
    if name + where + tags_room > room:
        name = min(name, max(MIN_NAME, room * 2 // 5))
    where = min(where, max(MIN_ADDRESS, room - name - tags_room))
    if name + where + tags_room > room:
        name = max(MIN_NAME, room - where - tags_room)
    tags = min(tags, max(len("TAGS"), room - name - where))
    if name + where + tags > room:  # a narrow terminal: the address gives way again, as far as its header
        where = max(len("ADDRESS"), room - name - tags)
    return [name, status, seen, where, tags]


def _row(cells: Sequence[str], widths: list[int]) -> str:
    name, status, seen, tags = (_cut(cells[c], widths[c]) for c in (0, 1, 2, 4))
    where = _cut_address(cells[3], widths[3])
    return (f"{name:<{widths[0]}}  {status:<{widths[1]}}  {seen:>{widths[2]}}  {where:<{widths[3]}}  "
            f"{tags}").rstrip()


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:max(0, width - 1)] + ELLIPSIS


def _cut_address(text: str, width: int) -> str:
    """`text` within `width`, cut in its object id if it has one, so that HOST:PORT stays whole."""
    head, at, location = text.rpartition("@")
    if len(text) <= width or not at or width < len(location) + 3:
        return _cut(text, width)
    return head[:width - len(location) - 2] + ELLIPSIS + at + location


def _count(entries: dict[str, dict[str, Any]]) -> str:
    every = [i for entry in entries.values() for i in instances(entry)]
    line = f"{_plural(len(entries), 'name')}, {_plural(len(every), 'instance')}"
    others = {s: sum(i["status"] == s for i in every) for s in STATUSES[1:]}
    shown = [f"{n} {s}" for s, n in others.items() if n]
    return line + (f" ({', '.join(shown)})" if shown else "")


def address(name: str, uri: str) -> str:
    """Where `uri` is, without repeating `name`: HOST:PORT, or OBJECT@HOST:PORT if the object has another id."""
    from Pyro5.core import URI
    from Pyro5.errors import PyroError

    try:
        parsed = URI(uri)
    except PyroError:
        return uri
    if parsed.protocol != "PYRO":
        return uri
    return parsed.location if parsed.object == name else f"{parsed.object}@{parsed.location}"


# -- watch --------------------------------------------------------------------------------------------

def run_watch(args: argparse.Namespace, settings: Settings) -> int:
    """`lonja watch`: the selected names, then their changes, across name server restarts, until a signal."""
    from lonja.config import stop_on_signals

    stop = threading.Event()
    with stop_on_signals(stop.set):
        Watcher(settings, selection_of(args), args.json, stop).run(snapshot=not args.no_snapshot)
    return 0


class Watcher:
    """Follows the name server's change log; when it goes away, reconnects and prints the difference."""

    def __init__(self, settings: Settings, selection: Selection, as_json: bool, stop: threading.Event) -> None:
        self.settings = settings
        self.selection = selection
        self.as_json = as_json
        self.stop = stop
        self.state: State = {}

    def run(self, snapshot: bool = True) -> None:
        """Print until `stop` is set; a NameServerUnreachable only if the name server is not there at first."""
        ns, seq, self.state = self._attach()
        _note(f"watching {ns.address}" + (f" for {self.selection.describe()}" if self.selection.patterns
                                          else "") + " (Ctrl-C to stop)")
        if snapshot:
            for (name, uri), status in sorted(self.state.items()):
                self._emit(time.time(), "present", name, uri, status)
        try:
            while not self.stop.is_set():
                try:
                    answer = ns.changes(seq, 1.0, self.selection.server_prefix)
                except NameServerUnreachable:
                    ns.close()
                    _note(f"the name server at {ns.address} went away: reconnecting; what changes meanwhile "
                          f"follows when it is back")
                    attached = self._reattach(announce=True)
                    if attached is None:
                        return
                    ns, seq = attached
                    continue
                if answer.get("reset"):
                    ns.close()
                    attached = self._reattach()
                    if attached is None:
                        return
                    ns, seq = attached
                    continue
                seq = answer["seq"]
                for event in answer["events"]:
                    if self.selection.name_matches(event["name"]):
                        self._apply(event)
        finally:
            ns.close()

    def _attach(self) -> tuple[NameServerClient, int, State]:
        """A client following the name server, the log position and the state there from that position on."""
        ns = _client(self.settings, long_poll=True)
        try:
            if not ns.is_lonja():
                raise UsageError(f"the name server at {ns.address} is plain Pyro5's: it has no change log to watch")
            seq = ns.changes(-1, 0)["seq"]
            state = {(name, instance["uri"]): instance["status"]
                     for name, entry in select(ns.entries(self.selection.server_prefix), self.selection).items()
                     for instance in instances(entry)}
        except BaseException:
            ns.close()
            raise
        return ns, seq, state

    def _reattach(self, announce: bool = False) -> tuple[NameServerClient, int] | None:
        """Attach again, retrying with backoff; print what changed meanwhile. None if stopped first."""
        delay = RECONNECT_FIRST
        while not self._stopped_within(delay):
            try:
                ns, seq, state = self._attach()
            except NameServerUnreachable:
                delay = min(delay * 2, RECONNECT_CAP)
                continue
            if announce:
                _note(f"the name server at {ns.address} is back")
            now = time.time()
            for key in sorted(self.state.keys() | state.keys()):
                before, after = self.state.get(key), state.get(key)
                if after is None:
                    self._emit(now, "removed", *key, before or "")
                elif before is None:
                    self._emit(now, "added", *key, after)
                elif before != after:
                    self._emit(now, "status", *key, after)
            self.state = state
            return ns, seq
        return None

    def _stopped_within(self, seconds: float) -> bool:
        """Sleep up to `seconds`, True as soon as `stop` is set.

        Polled rather than `stop.wait()`: the signal handler sets `stop` in this same thread, and must not
        find the event's lock held by a wait it interrupted.
        """
        deadline = time.monotonic() + seconds
        while not self.stop.is_set() and time.monotonic() < deadline:
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        return self.stop.is_set()

    def _apply(self, event: dict[str, Any]) -> None:
        """Take one change into the state; print it unless the state already had it."""
        key = (event["name"], event["uri"])
        before = self.state.get(key)
        if event["kind"] == "removed":
            if before is not None:
                del self.state[key]
                self._emit(event["time"], "removed", *key, before)
            return
        if before == event["status"]:
            return
        self.state[key] = event["status"]
        self._emit(event["time"], "added" if before is None else "status", *key, event["status"])

    def _emit(self, when: float, kind: str, name: str, uri: str, status: str) -> None:
        if self.as_json:
            line = json.dumps({"time": when, "kind": kind, "name": name, "uri": uri, "status": status},
                              ensure_ascii=False)
        else:
            clock = time.strftime("%H:%M:%S", time.localtime(when))
            detail = "" if kind == "removed" else status
            line = f"{clock}  {kind:<7}  {_printable(name)}  {_printable(address(name, uri))}  {detail}".rstrip()
        print(line, flush=True)


def _note(text: str) -> None:
    """A line about the watch itself (not a change): on stderr, so stdout holds changes only."""
    print(f"{time.strftime('%H:%M:%S')}  {text}", file=sys.stderr, flush=True)


# -- register, remove, meta ---------------------------------------------------------------------------

def run_register(args: argparse.Namespace, settings: Settings) -> int:
    """`lonja register NAME URI`: a plain registration (the name server probes it)."""
    from Pyro5.core import URI
    from Pyro5.errors import PyroError

    name = _check_name(args.name)
    try:
        URI(args.uri)
    except PyroError:
        raise UsageError(f"invalid URI {args.uri!r}: expected PYRO:OBJECT@HOST:PORT") from None
    tags = set(args.meta or ())
    with _client(settings) as ns:
        try:
            previous = ns.lookup(name)[0]
        except NameNotFound:
            previous = None
        _write(lambda: ns.register(name, args.uri, tags))
    replaced = f" (it was {previous})" if previous and previous != args.uri else ""
    print(f"registered {_printable(name)} at {args.uri}{replaced}")
    return 0


def run_remove(args: argparse.Namespace, settings: Settings) -> int:
    """`lonja remove`: one name, or every name with a prefix or matching a regex, after asking if several."""
    if args.name is not None:
        name = _check_name(args.name)
        if name == NS_NAME:
            raise AccessDenied("the name server's own entry cannot be removed")
        with _client(settings) as ns:
            if not _write(lambda: ns.remove(name)):
                raise NameNotFound(f"no name {name!r} in the name server: see `lonja ls`")
        print(f"removed {_printable(name)}")
        return 0
    if not args.prefix and not args.regex:
        raise UsageError("say what to remove: NAME, --prefix P or --regex R (nothing was removed)")
    selection = Selection((Pattern(args.prefix) if args.prefix else regex_pattern(args.regex),))
    with _client(settings) as ns:
        names = [n for n in sorted(listing(ns, selection.server_prefix)) if n != NS_NAME
                 and selection.name_matches(n)]
        if not names:
            raise NameNotFound(f"no {selection.describe()}: nothing was removed")
        if len(names) > 1 and not args.yes and not _confirm(names):
            print("nothing was removed", file=sys.stderr)
            return 0
        removed = _write(lambda: ns.remove(prefix=args.prefix or None, regex=args.regex or None))
    print(f"removed {_plural(removed, 'name')}")
    return 0


def _confirm(names: list[str]) -> bool:
    """Ask on the terminal whether to remove `names`; a UsageError if there is no terminal to ask on."""
    if not sys.stdin.isatty():
        raise UsageError(f"{len(names)} names would be removed: add --yes to remove them without a terminal "
                         f"to ask on (nothing was removed)")
    shown = ", ".join(_printable(n) for n in names[:CONFIRM_SHOWS])
    more = f" and {len(names) - CONFIRM_SHOWS} more" if len(names) > CONFIRM_SHOWS else ""
    print(f"{shown}{more}", file=sys.stderr)
    print(f"remove these {len(names)} names? [y/N] ", end="", file=sys.stderr, flush=True)
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def run_meta(args: argparse.Namespace, settings: Settings) -> int:
    """`lonja meta NAME [+TAG] [-TAG]`: print the tags of NAME, after changing them if asked."""
    name = _check_name(args.name)
    add: set[str] = set()
    drop: set[str] = set()
    for word in args.changes:
        if len(word) < 2 or word[0] not in "+-":
            raise UsageError(f"{word!r} is not a change: write +TAG to add a tag, -TAG to remove one")
        (add if word[0] == "+" else drop).add(word[1:])
    if add & drop:
        raise UsageError(f"both adding and removing {', '.join(sorted(add & drop))}")
    with _client(settings) as ns:
        tags = ns.lookup(name)[1]
        if add or drop:
            tags = frozenset((tags | add) - drop)
            _write(lambda: ns.set_metadata(name, tags))
    print(f"{_printable(name)}: {' '.join(_printable(t) for t in sorted(tags)) or '(no tags)'}")
    return 0


def _write(change: Callable[[], Any]) -> Any:
    """Run one write to the name server; an argument it refuses is a usage error."""
    try:
        return change()
    except (ValueError, TypeError) as exc:
        raise UsageError(f"the name server refused it: {exc}") from None


def _check_name(name: str) -> str:
    if not name or not name.strip():
        raise UsageError("a name must not be empty")
    return name


# -- shared -------------------------------------------------------------------------------------------

def _client(settings: Settings, long_poll: bool = False) -> NameServerClient:
    from .naming import NameServerClient

    timeout = settings["client.connect_timeout"]
    return NameServerClient(settings.ns_address, timeout=timeout + 10 if long_poll else timeout, settings=settings)


def _printable(text: str) -> str:
    """`text` as is if printable, else with its control characters escaped (no terminal escapes get through)."""
    return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _ago(seconds: float) -> str:
    if seconds < 60:
        return f"{max(0.0, seconds):.0f}s ago"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.0f}h ago"


def _print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, default=str, ensure_ascii=False)
    print()
