"""Wire timestamps: UTC ``YYYY-MM-DDTHH:MM:SSZ``."""
from __future__ import annotations

import time


def iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
