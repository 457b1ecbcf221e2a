"""The dashboard web page and its JSON API: :func:`create_dashboard_app`."""

from __future__ import annotations

from pinpipe.dashboard.app import create_dashboard_app

__all__ = ["create_dashboard_app"]
