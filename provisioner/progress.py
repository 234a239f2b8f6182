"""A progress bar on stderr for long work, only when a person is watching."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from typing import TypeVar

import click

T = TypeVar("T")
THRESHOLD = 20


def progress(items: Sequence[T], label: str) -> Iterator[T]:
    if len(items) < THRESHOLD or not sys.stderr.isatty():
        yield from items
        return
    with click.progressbar(items, label=label, file=sys.stderr) as bar:
        yield from bar
