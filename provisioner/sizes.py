"""Sizes as operators write them: ``50G``, ``500M``, ``1.5T`` or plain bytes (units are binary)."""

from __future__ import annotations

import re

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}
_SIZE_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGTP]?)(?:I?B)?", re.IGNORECASE)


def parse_size(text: str | int) -> int:
    """Bytes for ``text``; ValueError with the reason when it is not a size."""
    if isinstance(text, bool):
        raise ValueError("not a size")
    if isinstance(text, int):
        if text <= 0:
            raise ValueError("a size must be positive")
        return text
    match = _SIZE_RE.fullmatch(str(text).strip())
    if not match:
        raise ValueError(f"{text!r} is not a size (examples: 50G, 500M, 1073741824)")
    number, unit = match.groups()
    value = int(float(number) * _UNITS[unit.upper()])
    if value <= 0:
        raise ValueError("a size must be positive")
    return value


def format_size(value: int | None) -> str:
    if value is None:
        return "-"
    for unit in ("P", "T", "G", "M", "K"):
        scale = _UNITS[unit]
        if value >= scale and value % scale == 0:
            return f"{value // scale}{unit}"
    if value >= 1 << 20:
        return f"{value / (1 << 30):.1f}G" if value >= 1 << 30 else f"{value / (1 << 20):.1f}M"
    return str(value)
