"""Package exports imported on first use, so that `import lonja.clients` (and the `lonja` command's
parser, which imports every package's `cli`) does not load every module of the package up front."""

from __future__ import annotations

import importlib
import sys
from typing import Any


def lazy_attribute(package: str, exports: dict[str, str], name: str) -> Any:
    """The package attribute `name`, from the module `exports` maps it to (relative to `package`)."""
    module = exports.get(name)
    if module is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, package), name)


def lazy_dir(package: str, exports: dict[str, str]) -> list[str]:
    """The package's names: those already imported and those it exports lazily."""
    return sorted(set(vars(sys.modules[package])) | set(exports))
