"""One way to run things at once: every fan-out of the pipeline goes through ``gather``.

anyio wraps whatever fails inside a task group in an ``ExceptionGroup``, which the Dagger SDK
reports as "unhandled errors in a TaskGroup (1 sub-exception)" and which ``except SomeError``
does not catch. ``gather`` lets every call finish, then raises the failure itself (one) or a
``ConcurrentStepsError`` naming each of them (several): the first line of the error is the cause.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import TypeVar

import anyio

KeyT = TypeVar("KeyT", bound=Hashable)
ResultT = TypeVar("ResultT")


class ConcurrentStepsError(Exception):
    """Several calls run at once failed; ``failures`` maps each key to its error."""

    def __init__(self, failures: Mapping[object, Exception]) -> None:
        self.failures = dict(failures)
        causes = "; ".join(f"{key}: {first_line(error)}" for key, error in self.failures.items())
        super().__init__(f"{len(self.failures)} steps failed: {causes}")


def first_line(error: BaseException) -> str:
    """An error's first line, or its type when it has no message."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


async def gather(
    calls: Mapping[KeyT, Callable[[], Awaitable[ResultT]]],
) -> dict[KeyT, ResultT]:
    """Run every call at once, wait for all, and return their results under the same keys.

    A failure does not cancel the other calls: each one ends, so a failed push is reported
    with everything else that failed, and nothing is left half-written by a cancellation.
    """
    results: dict[KeyT, ResultT] = {}
    failures: dict[KeyT, Exception] = {}

    async def run(key: KeyT, call: Callable[[], Awaitable[ResultT]]) -> None:
        try:
            results[key] = await call()
        except Exception as error:  # collected, then raised below
            failures[key] = error

    async with anyio.create_task_group() as group:
        for key, call in calls.items():
            group.start_soon(run, key, call)
    if len(failures) == 1:
        (error,) = failures.values()
        raise error
    if failures:
        raise ConcurrentStepsError({key: failures[key] for key in calls if key in failures})
    return {key: results[key] for key in calls}
