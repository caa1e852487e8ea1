"""What the SSH side may write to a client's terminal.

Stored strings (an instance's hostname, a key pair's comment) come from API
callers, from databases made before the API checked them, or from
``db import``. Written raw, an ESC, BEL or newline among them would reach the
user's terminal as a command to it (move the cursor, retitle the window, fake
a prompt). Every stored value the banner, the prompt or a command prints goes
through :func:`printable` first.
"""
from __future__ import annotations


def printable(text: str) -> str:
    """``text`` with every character that is not printable (C0 and C1 controls,
    DEL, line and paragraph separators, format characters such as bidi
    overrides, unassigned code points) written as Python writes it in a string
    literal: ``\\x1b``, ``\\x07``, ``\\n``, ``\\u202e``. Printable text, CJK
    and other Unicode included, is kept as is; so are ordinary spaces."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)
