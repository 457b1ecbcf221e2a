"""``python -m pinpipe``"""

from __future__ import annotations

from pinpipe.cli import run

if __name__ == "__main__":
    run()
