"""Lazy imports of optional extras with a clear "install pinpipe[extra]" message."""

from __future__ import annotations

import importlib
from types import ModuleType

from pinpipe.errors import MissingDependencyError


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise MissingDependencyError naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(extra, module) from exc
