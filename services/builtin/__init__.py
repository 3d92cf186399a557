"""Services that ship with lonja, hosted by `lonja up` and `lonja serve NAME`."""

BUILTINS = {"echo": "lonja.services.builtin.echo:Echo"}
"""Each built-in service's name and its `package.module:Class`."""
