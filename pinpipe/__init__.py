"""pinpipe: a Pinterest-style event data pipeline you can run on a laptop and take to Kafka, Spark and S3.

The public API is small: settings, the log, the lake, and the error tree. Everything else is reached
through the ``pinpipe`` command or the stage packages (source, ingest, log, lake, transform, engines,
streaming, dashboard).
"""

from __future__ import annotations

from pinpipe.config import Settings, load_settings
from pinpipe.errors import PinpipeError
from pinpipe.lake.store import open_store
from pinpipe.log import open_log

__version__ = "0.1.0"
__all__ = ["PinpipeError", "Settings", "__version__", "load_settings", "open_log", "open_store"]
