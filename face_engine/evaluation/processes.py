"""Running a measurement over many presentations in several processes, for the benches."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def map_in_processes(
    function: Callable[[Item], Result], items: Iterable[Item], workers: int,
) -> Iterator[Result]:
    """``function`` of each item, in order, in ``workers`` processes (in this one when 1).
    The processes are spawned: each loads its own models rather than sharing a forked copy of
    the parent's inference threads. ``function`` must be picklable (a module-level function or a
    ``functools.partial`` of one)."""
    if workers <= 1:
        yield from map(function, items)
        return
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        yield from pool.imap(function, items)
