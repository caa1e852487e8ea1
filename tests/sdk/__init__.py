"""localbcc driven by Baidu's other official SDKs: Go (tests/sdk/go) and JavaScript (tests/sdk/js).

Those SDKs are not Python packages: the Go SDK's source comes from ``$BCE_SDK_GO``
and the JavaScript SDK from ``npm ci`` in tests/sdk/js. On a machine without
them these tests skip and say why; CI sets ``LOCALBCC_REQUIRE_SDKS=1``, which
turns a missing SDK into a failure instead of a silent skip.
"""
from __future__ import annotations

import os

import pytest


def unavailable(why: str) -> None:
    """Skip with ``why`` (a developer's machine), or fail with it where the SDKs are required."""
    if os.environ.get("LOCALBCC_REQUIRE_SDKS") == "1":
        pytest.fail(f"{why} (LOCALBCC_REQUIRE_SDKS=1)", pytrace=False)
    pytest.skip(why)
