"""Optional extras: lazy imports, the command that installs a missing one, and the extras settings need.

The one home of the "not installed" message, so every missing extra names the command that installs it.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from pinpipe.errors import MissingDependencyError

if TYPE_CHECKING:
    from pinpipe.config import Settings

ROOT = Path(__file__).resolve().parents[1]
"""The source checkout pinpipe runs from, when it has a pyproject.toml (``make install`` is editable)."""


def _shown(path: Path) -> str:
    """``path`` relative to the current directory when inside it (``.venv/bin/pip``), else absolute."""
    here = Path.cwd()
    if path == here:
        return "."
    if path.is_relative_to(here):
        return str(path.relative_to(here))
    return str(path)


def install_command(extra: str) -> str:
    """The command that installs ``extra`` into the environment running pinpipe.

    From a source checkout (``make demo`` / ``make install`` create .venv and install it editable) it is
    that venv's pip on the checkout, e.g. ``.venv/bin/pip install -e '.[kafka]'``; elsewhere
    ``pip install 'pinpipe[kafka]'`` with the running interpreter's pip.
    """
    python = Path(sys.executable)  # not resolved: a venv's python is a link to the system one
    pip = python.parent / "pip"
    runner = _shown(pip) if pip.is_file() and os.access(pip, os.X_OK) else f"{_shown(python)} -m pip"
    if (ROOT / "pyproject.toml").is_file():
        return f"{runner} install -e '{_shown(ROOT)}[{extra}]'"
    return f"{runner} install 'pinpipe[{extra}]'"


def missing(extra: str, module: str) -> MissingDependencyError:
    """The error for ``module`` of ``extra`` not being importable, with the command that installs it."""
    return MissingDependencyError(extra, module, install_command(extra))


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise MissingDependencyError naming the extra and how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise missing(extra, module) from exc


def required_extras(settings: Settings) -> dict[str, str]:
    """The optional modules ``settings`` will use, as {module: extra}: a Kafka or Kinesis log, an S3
    lake or tables, the Spark engine, a MySQL or PostgreSQL source."""
    needed: dict[str, str] = {}
    for url in (settings.log_url, settings.stream_log_url):
        scheme = urlparse(url).scheme
        if scheme == "kafka":
            needed["confluent_kafka"] = "kafka"
        elif scheme == "kinesis":
            needed["boto3"] = "s3"
    if "s3" in (urlparse(settings.lake_url).scheme, urlparse(settings.tables_url).scheme):
        needed["boto3"] = "s3"
    if settings.engine.name == "spark":
        needed["pyspark"] = "spark"
        needed["delta"] = "spark"
    backend = urlparse(settings.source_url).scheme.split("+")[0]
    if backend == "mysql":
        needed["pymysql"] = "mysql"
    elif backend == "postgresql":
        needed["psycopg"] = "postgres"
    return needed


def require_extras(settings: Settings) -> None:
    """Raise MissingDependencyError for the first optional module ``settings`` need that is missing,
    before a command changes anything."""
    for module, extra in required_extras(settings).items():
        require(module, extra)
