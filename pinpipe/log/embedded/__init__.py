"""The embedded log: SQLite on local disk, no server (:mod:`pinpipe.log.embedded.log` says how)."""

from pinpipe.log.embedded.log import EmbeddedLog, parse_url

__all__ = ["EmbeddedLog", "parse_url"]
