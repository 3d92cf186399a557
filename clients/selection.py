"""Which names a command is about, as `lonja ls`, `watch`, `remove` and the web console's `/api/names` choose.

A name pattern is a prefix, a glob (on the whole name) or a regex matched from the start of the name, as
Pyro5's name server matches one; tags and instance statuses narrow the choice. The filtering happens here,
on one listing the name server gives for the longest prefix every chosen name has.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from .errors import UsageError

if TYPE_CHECKING:
    from .naming import NameServerClient

STATUSES = ("serving", "not serving", "unreachable", "unknown")
"""The statuses the name server reports for an instance (see the name server's registry)."""
GLOB_CHARS = frozenset("*?[")
PatternKind = Literal["prefix", "glob", "regex"]
PATTERN_KINDS: tuple[PatternKind, ...] = ("prefix", "glob", "regex")

Entries = dict[str, dict[str, Any]]
"""A listing: name -> {"uri", "metadata", "instances"}."""


@dataclass(frozen=True)
class Pattern:
    """A condition on a name: it starts with `text` (prefix), matches it whole (glob), or from its start (regex)."""

    text: str
    kind: PatternKind = "prefix"

    def __post_init__(self) -> None:
        if self.kind == "regex":
            try:
                re.compile(self.text)
            except re.error as exc:
                raise UsageError(f"invalid regex {self.text!r}: {exc}") from None

    @classmethod
    def of(cls, text: str, regex: bool = False) -> Pattern:
        """As `lonja ls PATTERN` reads it: a regex if asked, a glob if it has `*?[`, else a prefix."""
        if regex:
            return cls(text, "regex")
        return cls(text, "prefix" if GLOB_CHARS.isdisjoint(text) else "glob")

    @property
    def server_prefix(self) -> str:
        """A prefix every matching name has."""
        if self.kind == "regex":
            return ""
        if self.kind == "glob":
            return self.text[:min((self.text.find(c) for c in GLOB_CHARS if c in self.text), default=len(self.text))]
        return self.text

    def matches(self, name: str) -> bool:
        """True if `name` meets the condition."""
        if self.kind == "regex":
            return re.match(self.text, name) is not None
        if self.kind == "glob":
            return fnmatch.fnmatchcase(name, self.text)
        return name.startswith(self.text)

    def describe(self) -> str:
        """The condition in words: "starting with 'shop.'", "matching 'shop.*'", "matching the regex 'x'"."""
        if self.kind == "regex":
            return f"matching the regex {self.text!r}"
        if self.kind == "glob":
            return f"matching {self.text!r}"
        return f"starting with {self.text!r}"


@dataclass(frozen=True)
class Selection:
    """Which names to take: every pattern matches, the tags include all of `meta_all` and one of `meta_any`,
    and an instance has one of `statuses` (no condition of a kind: no filter of that kind)."""

    patterns: tuple[Pattern, ...] = ()
    meta_all: tuple[str, ...] = ()
    meta_any: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()

    @property
    def server_prefix(self) -> str:
        """A prefix every selected name has, for the name server to filter on first."""
        return max((pattern.server_prefix for pattern in self.patterns), key=len, default="")

    def name_matches(self, name: str) -> bool:
        """True if every pattern matches `name`."""
        return all(pattern.matches(name) for pattern in self.patterns)

    def tags_match(self, tags: Iterable[str]) -> bool:
        """True if `tags` include all of `meta_all` and, if any are asked, one of `meta_any`."""
        have = set(tags)
        return have.issuperset(self.meta_all) and (not self.meta_any or not have.isdisjoint(self.meta_any))

    def status_matches(self, status: str) -> bool:
        """True if an instance of this status is taken."""
        return not self.statuses or status in self.statuses

    def describe(self) -> str:
        """The selection in words, for messages: "names matching 'market.*' with the tag fruit"."""
        words = ["names"]
        if self.patterns:
            words.append(" and ".join(pattern.describe() for pattern in self.patterns))
        if self.meta_all:
            words.append("with the tag" + ("s " if len(self.meta_all) > 1 else " ") + " and ".join(self.meta_all))
        if self.meta_any:
            words.append("with a tag of " + ", ".join(self.meta_any))
        if self.statuses:
            words.append("with an instance that is " + " or ".join(self.statuses))
        return " ".join(words)


def select(entries: Mapping[str, dict[str, Any]], selection: Selection, whole: bool = False) -> Entries:
    """The entries the selection takes, in name order; with a status filter, each keeps only the instances
    that have one of the statuses, unless `whole`."""
    chosen = {}
    for name in sorted(entries):
        entry = entries[name]
        if not selection.name_matches(name) or not selection.tags_match(entry["metadata"]):
            continue
        taken = [i for i in instances(entry) if selection.status_matches(i["status"])]
        if taken:
            chosen[name] = {**entry, "instances": taken} if selection.statuses and not whole else entry
    return chosen


def instances(entry: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The entry's instances; a plain Pyro5 name server's entry has one, of unknown status."""
    return entry["instances"] or [{"uri": entry["uri"], "status": "unknown", "last_seen": 0}]


def listing(ns: NameServerClient, prefix: str = "") -> Entries:
    """Every name starting with `prefix` with its tags and instances (none from a plain Pyro5 name server)."""
    if ns.is_lonja():
        return ns.entries(prefix)
    return {name: {"uri": uri, "metadata": sorted(meta), "instances": []}
            for name, (uri, meta) in ns.list(prefix).items()}


def parse_status(word: str) -> str:
    """A status as the name server writes it, from `not-serving`, `not_serving` or `not serving`."""
    status = word.replace("-", " ").replace("_", " ")
    if status not in STATUSES:
        raise UsageError(f"unknown status {word!r}: use one of " + ", ".join(s.replace(" ", "-") for s in STATUSES))
    return status
