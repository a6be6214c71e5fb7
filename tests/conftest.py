"""Shared fixtures: the anyio backend, real OCI registries on loopback, and recorded spans."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import settings
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.support.registry_server import RegistryServer
from tests.support.scheduling import make_scheduler

settings.register_profile("machine-speed-independent", deadline=None)
settings.load_profile("machine-speed-independent")
"""No property test has a deadline: under load one example may take seconds, never a failure."""

REGISTRY_USER = "releaser"
REGISTRY_PASSWORD = "s3cret-" + secrets.token_hex(8)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """With ``-n``: every image test on one worker, the rest spread over the others."""
    return make_scheduler(config, log)


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """Async tests run on asyncio, as the Dagger SDK does."""
    return "asyncio"


@pytest.fixture(scope="session")
def registry() -> Iterator[RegistryServer]:
    """An anonymous ``docker-registry`` on 127.0.0.1 for the whole session."""
    with RegistryServer() as server:
        yield server


@pytest.fixture(scope="session")
def auth_registry() -> Iterator[RegistryServer]:
    """A ``docker-registry`` with htpasswd basic auth (``server.username``/``.password``)."""
    with RegistryServer(username=REGISTRY_USER, password=REGISTRY_PASSWORD) as server:
        yield server


@pytest.fixture
def owner() -> str:
    """A unique lowercase owner per test, so tests never share a repository."""
    return "t" + secrets.token_hex(6)


@pytest.fixture(scope="session")
def span_exporter() -> InMemorySpanExporter:
    """Every OpenTelemetry span the pipeline ends, as the Dagger TUI would receive them."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)  # once per process: OpenTelemetry allows no second
    return exporter


@pytest.fixture
def spans(span_exporter: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    """The span exporter, emptied before and after the test."""
    span_exporter.clear()
    yield span_exporter
    span_exporter.clear()
