"""``python -m pinpipe``"""

from __future__ import annotations

import sys

from pinpipe.cli import main

if __name__ == "__main__":
    sys.exit(main())
