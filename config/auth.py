"""Who a connection is: tokens from the settings, checked in constant time, mapped to a role.

Roles: `admin` may change any name; `service` may register names and change only the names it
registered; `reader` may list and look up. A connection without a token is `anonymous`: a reader when
`auth.allow_anonymous_read` is on, refused otherwise. With auth off, every connection may do anything
(the embedded default), and only the name server's own entry stays protected.
"""

from __future__ import annotations

from typing import NamedTuple

from .settings import Settings

ROLES = ("admin", "service", "reader")


class Identity(NamedTuple):
    """Who made a request: a name from the token ("who:secret"), and a role."""

    who: str
    role: str

    @property
    def can_read(self) -> bool:
        return self.role != "none"

    @property
    def can_write(self) -> bool:
        return self.role in ("admin", "service", "open")


ANONYMOUS_OPEN = Identity("anonymous", "open")   # auth off: anyone may do anything
ANONYMOUS_READER = Identity("anonymous", "reader")


class AuthError(Exception):
    """A token was refused, or a request needs a token it doesn't have."""


class TokenTable:
    """The tokens a server accepts, from `[auth]` settings."""

    def __init__(self, enabled: bool, entries: dict[str, list[str]], allow_anonymous_read: bool) -> None:
        self.enabled = enabled
        self.allow_anonymous_read = allow_anonymous_read
        self._entries = [(role, *entry.split(":", 1)) for role, tokens in entries.items() for entry in tokens]

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenTable:
        return cls(settings["auth.enabled"],
                   {role: settings[f"auth.{role}_tokens"] for role in ROLES},
                   settings["auth.allow_anonymous_read"])

    @classmethod
    def for_callers(cls, settings: Settings) -> TokenTable:
        """The tokens a service accepts from callers under `auth.require_token`: any role, never anonymous."""
        return cls(True, {role: settings[f"auth.{role}_tokens"] for role in ROLES}, allow_anonymous_read=False)

    def identify(self, token: str | None) -> Identity:
        """The identity behind `token` (None or "" for no token), or AuthError if it is refused."""
        if not self.enabled:
            return ANONYMOUS_OPEN
        if not token:
            if self.allow_anonymous_read:
                return ANONYMOUS_READER
            raise AuthError("this server requires a token: set auth.token (or LONJA_AUTH_TOKEN)")
        import hmac  # servers that check tokens only

        found = None
        given = token.encode()
        for role, who, secret in self._entries:  # compare with every entry: no early exit, constant time each
            if hmac.compare_digest(given, secret.encode()) and found is None:
                found = Identity(who, role)
        if found is None:
            raise AuthError("invalid token: check auth.token (or LONJA_AUTH_TOKEN)")
        return found


def client_token(settings: Settings) -> str:
    """The token this process presents, without the "who:" part if one was given."""
    token = settings["auth.token"]
    return token.split(":", 1)[1] if ":" in token else token
