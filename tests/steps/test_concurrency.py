"""The one fan-out: results under their keys, failures raised as themselves or named together."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
import pytest
from pipeline.steps.concurrency import ConcurrentStepsError, gather

pytestmark = pytest.mark.anyio


def after(seconds: float, result: str | Exception) -> Callable[[], Awaitable[str]]:
    """A call that returns (or raises) ``result`` after ``seconds``."""

    async def call() -> str:
        await anyio.sleep(seconds)
        if isinstance(result, Exception):
            raise result
        return result

    return call


async def test_results_keep_their_keys_and_order() -> None:
    results = await gather({"slow": after(0.05, "a"), "fast": after(0.0, "b")})

    assert list(results.items()) == [("slow", "a"), ("fast", "b")]


async def test_one_failure_is_raised_as_itself() -> None:
    cause = LookupError("tag 2.4.0 cannot be read")

    with pytest.raises(LookupError) as failure:
        await gather({"api": after(0.0, cause), "worker": after(0.0, "ok")})

    assert failure.value is cause


async def test_several_failures_are_named_in_the_first_line() -> None:
    with pytest.raises(ConcurrentStepsError) as failure:
        await gather(
            {
                "api": after(0.0, RuntimeError("push refused\nsecond line")),
                "ok": after(0.0, "fine"),
                "worker": after(0.0, ValueError()),
            }
        )

    assert str(failure.value) == "2 steps failed: api: push refused; worker: ValueError"
    assert list(failure.value.failures) == ["api", "worker"]


async def test_a_failure_does_not_cancel_the_other_calls() -> None:
    finished: list[str] = []

    async def slow() -> str:
        await anyio.sleep(0.05)
        finished.append("slow")
        return "done"

    with pytest.raises(RuntimeError):
        await gather({"fails": after(0.0, RuntimeError("no")), "slow": slow})

    assert finished == ["slow"]
