"""Progress of a release as OpenTelemetry spans: one per build, push, tag move and verification.

The Dagger engine gives a module a tracer provider; spans opened here show up as steps in the
Dagger TUI and in Dagger Cloud traces, nested under the function call, with their errors. Outside
an engine (the offline CLI, tests) the OpenTelemetry API's default provider makes them no-ops.

The TUI and ``--progress plain`` show span names only, never span events or attributes: a note
is a span named by its text, and whatever a user must read also goes into the function's output.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace

TRACER_NAME = "qm-nmr-calc.pipeline"


@contextmanager
def step(name: str, **attributes: str) -> Iterator[trace.Span]:
    """A span called ``name`` around one step; an error inside marks it failed and propagates."""
    tracer = trace.get_tracer(TRACER_NAME)
    with tracer.start_as_current_span(name, attributes=attributes) as span:
        yield span


def note(message: str) -> None:
    """Something worth reading as it happens: a child span of the current step, named by it."""
    trace.get_tracer(TRACER_NAME).start_span(message).end()
