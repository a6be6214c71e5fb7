"""Benchmark: a whole release with real images. Prints figures; it is not a timed test.

``Pipeline.publish`` of v2.4.0 (upstream's v2.4.0 snapshot) runs on the real SDK objects; the
stand-in engine builds every variant with a fresh private BuildKit daemon (nothing cached) and
pushes the images into a loopback registry as the engine would. Printed: the release's wall time
against the slowest single variant build of the same run (target <= 1.2: the builds overlap,
pushes and verification add little), each variant's build time and push time, and how long each
step of the release took after the builds (from the release's own OpenTelemetry spans).

Needs what the image tests need (root, docker.io, mmdebstrap, QEMU, docker-compose).
``IMAGE_TEST_CACHE=DIR`` keeps the stand-in root filesystems between runs.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.images.rehearsal import publish, rehearsal

TAG = "v2.4.0"
TARGET = 1.2
STEPS = ("version tags of", "push ", "annotate ", "SBOM of", "sign ", "move ", "verify ")
"""Steps after the builds whose spans the benchmark sums up, by how their names start."""


def step_seconds(spans: Sequence[ReadableSpan]) -> dict[str, tuple[int, float]]:
    """For each step kind: how many spans, and the seconds from the first start to the last end."""
    figures = {}
    for kind in STEPS:
        matching = [s for s in spans if s.name.startswith(kind) and s.start_time and s.end_time]
        if matching:
            first = min(span.start_time or 0 for span in matching)
            last = max(span.end_time or 0 for span in matching)
            figures[kind.strip()] = (len(matching), (last - first) / 1e9)
    return figures


def main() -> int:
    """Run one release and print the figures."""
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    trace.set_tracer_provider(provider)
    with (
        tempfile.TemporaryDirectory(prefix="bench-release-") as scratch,
        rehearsal(Path(scratch)) as ready,
    ):
        started = time.perf_counter()
        publish(ready.builder, ready.registry, TAG)
        wall = time.perf_counter() - started
        builder = ready.builder
    slowest = max(builder.build_seconds.values())
    for image, seconds in sorted(builder.build_seconds.items()):
        print(f"build {image:40} {seconds:7.1f} s")
    for pushed, seconds in sorted(builder.push_seconds.items()):
        print(f"push {pushed:41} {seconds:7.1f} s")
    for kind, (count, seconds) in step_seconds(spans.get_finished_spans()).items():
        print(f"steps '{kind}' ({count}), first start to last end: {seconds:7.1f} s")
    print(f"release {TAG} wall time:                   {wall:7.1f} s")
    print(
        f"wall / slowest variant build:              {wall / slowest:7.2f} (target <= {TARGET}; "
        f"{wall - slowest:.1f} s for pushes, tags and verification)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
