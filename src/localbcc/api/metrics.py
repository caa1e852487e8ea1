"""Request metrics in the Prometheus text format (served at ``GET /metrics``).

Recording is on the hot path, so it is two dict look-ups, a bisect into fixed
bucket bounds and two list increments per request; nothing is allocated once an
(operation, code) pair has been seen. Rendering the text happens only when
someone scrapes ``/metrics``.

Each server process counts its own requests: with ``--workers N`` a scrape
sees the process that accepted the connection (``pid`` label on every series
tells them apart).
"""
from __future__ import annotations

import os
import time
from bisect import bisect_left

from ..errors import ErrorCode

#: Latency bucket upper bounds, in seconds (Prometheus ``le``, inclusive).
BOUNDS: tuple[float, ...] = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                             0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_N = len(BOUNDS)  # index of the +Inf bucket; the slot after it holds the sum
_STATUS = {code.wire: code.status for code in ErrorCode}
CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """Per-(operation, code) request counts and latency histograms."""

    def __init__(self) -> None:
        # operation -> code -> [bucket 0 .. bucket N-1, +Inf bucket, sum of seconds]
        self._stats: dict[str, dict[str, list]] = {}
        self.in_flight = 0  # /v2 requests started and not yet answered
        self._started = time.time()
        self._pid = str(os.getpid())

    def observe(self, operation: str, code: str, seconds: float) -> None:
        codes = self._stats.get(operation)
        if codes is None:
            codes = self._stats[operation] = {}
        slots = codes.get(code)
        if slots is None:
            slots = codes[code] = [0] * (_N + 1) + [0.0]
        slots[bisect_left(BOUNDS, seconds)] += 1
        slots[-1] += seconds

    def count(self, operation: str, code: str) -> int:
        slots = self._stats.get(operation, {}).get(code)
        return sum(slots[:-1]) if slots else 0

    def render(self) -> bytes:
        pid = self._pid
        out = [
            "# HELP localbcc_requests_total Requests answered, by operation and code.",
            "# TYPE localbcc_requests_total counter",
        ]
        rows = sorted((op, code, slots) for op, codes in self._stats.items()
                      for code, slots in codes.items())
        for op, code, slots in rows:
            out.append(f'localbcc_requests_total{{{_labels(op, code, pid)}}} {sum(slots[:-1])}')
        out += [
            "# HELP localbcc_request_duration_seconds Time from request start to response sent.",
            "# TYPE localbcc_request_duration_seconds histogram",
        ]
        for op, code, slots in rows:
            labels = _labels(op, code, pid)
            running = 0
            for bound, n in zip(BOUNDS, slots):
                running += n
                out.append(f'localbcc_request_duration_seconds_bucket{{{labels},le="{bound}"}} {running}')
            running += slots[_N]
            out.append(f'localbcc_request_duration_seconds_bucket{{{labels},le="+Inf"}} {running}')
            out.append(f"localbcc_request_duration_seconds_sum{{{labels}}} {slots[-1]:.6f}")
            out.append(f"localbcc_request_duration_seconds_count{{{labels}}} {running}")
        out += [
            "# HELP localbcc_requests_in_flight API requests being served right now.",
            "# TYPE localbcc_requests_in_flight gauge",
            f'localbcc_requests_in_flight{{pid="{pid}"}} {self.in_flight}',
            "# HELP localbcc_process_start_time_seconds When this server process started (Unix time).",
            "# TYPE localbcc_process_start_time_seconds gauge",
            f'localbcc_process_start_time_seconds{{pid="{pid}"}} {self._started:.3f}',
        ]
        return ("\n".join(out) + "\n").encode("utf-8")


def _labels(op: str, code: str, pid: str) -> str:
    status = 200 if code == "OK" else _STATUS.get(code, 0)
    return f'operation="{_escape(op)}",status="{status}",code="{_escape(code)}",pid="{pid}"'


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def is_loopback(client: tuple[str, int] | None) -> bool:
    """Whether an ASGI ``scope["client"]`` is on this machine (127.0.0.0/8, ::1)."""
    if client is None:  # a unix socket: only local processes can reach it
        return True
    host = client[0]
    return host.startswith(("127.", "::ffff:127.")) or host == "::1"
