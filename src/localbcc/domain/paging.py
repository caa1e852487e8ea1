"""Marker paging shared by every list (§4.4)."""
from __future__ import annotations

from typing import Callable, Sequence, TypeVar

from ..errors import inappropriate
from .ports import Tx

T = TypeVar("T")


def page(tx: Tx, kind: str, account: str, marker: str | None, max_keys: int,
         fetch: Callable[[int, int], Sequence[T]], id_of: Callable[[T], str]) -> dict:
    """Items from ``marker`` (inclusive, possibly deleted since) in creation order.

    ``fetch(start_seq, limit)`` returns items with ``seq >= start_seq`` in order.
    Returns the list wrapper fields with the items under ``"items"``.
    """
    start = 0
    if marker:
        seq = tx.seq_of(kind, account, marker)
        if seq is None:
            raise inappropriate("marker", "names no item of this account")
        start = seq
    return wrap(fetch(start, max_keys + 1), marker, max_keys, id_of)


def wrap(rows: Sequence[T], marker: str | None, max_keys: int,
         id_of: Callable[[T], str]) -> dict:
    """The list wrapper fields for ``rows``, the items from the marker on (at
    most ``max_keys + 1``: one more tells that the list goes on)."""
    truncated = len(rows) > max_keys
    result = {"marker": marker or "", "isTruncated": truncated, "maxKeys": max_keys,
              "items": list(rows[:max_keys])}
    if truncated:
        result["nextMarker"] = id_of(rows[max_keys])
    return result
