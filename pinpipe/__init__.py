"""pinpipe: a Pinterest-style event data pipeline you can run on a laptop and take to Kafka, Spark and S3.

The public API is small: settings, the log, the lake, and the error tree. Everything else is reached
through the ``pinpipe`` command or the stage packages (source, ingest, log, lake, transform, engines,
streaming, dashboard).

The names are imported on first use, so that importing a part of pinpipe (``pinpipe.cli`` for every
command) loads only what that part needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pinpipe.config import Settings, load_settings
    from pinpipe.errors import PinpipeError
    from pinpipe.lake.store import open_store
    from pinpipe.log import open_log

__version__ = "0.1.0"
__all__ = ["PinpipeError", "Settings", "__version__", "load_settings", "open_log", "open_store"]

_HOMES = {
    "PinpipeError": "pinpipe.errors",
    "Settings": "pinpipe.config",
    "load_settings": "pinpipe.config",
    "open_log": "pinpipe.log",
    "open_store": "pinpipe.lake.store",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'pinpipe' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
