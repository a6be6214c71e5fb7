"""Floating tags never move backwards, even when releases run at once.

Several real ``Pipeline.publish`` calls run concurrently through the stand-in engine into the real
loopback registry. Each release goes through four phases that another release can overtake:
D (it reads the published tags and decides), P (the engine pushes its version tag),
M (it starts finishing: annotation, and deciding again right before each move) and W (its first
floating-tag write reaches the registry). A schedule says in which order the phases of all
releases happen; every schedule must end as publishing the releases one after the other would:
each floating tag on the highest stable version in its scope, each version tag on its release,
and every release's own verification passing. Of the 70 schedules of two releases, one is run
for each way they can observe each other (26: which of the other's writes each read follows,
and whose floating write comes last); Hypothesis picks schedules of two or three releases.
"""

from __future__ import annotations

import itertools
import re
import secrets
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from typing import Any

import anyio
import dagger
import pytest
from dagger import dag
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pipeline.main import Pipeline
from pipeline.oci.client import RegistryClient
from pipeline.publishing import references_of
from pipeline.rules.versions import LATEST, published_versions
from pipeline.steps import finishing

from pipeline import publishing
from tests.support.registry_server import RegistryServer
from tests.support.standin import StandInEngine, signing_flags
from tests.support.standin_syft import RecordedScans

pytestmark = pytest.mark.anyio

TOKEN_ID = "secret-concurrent-token"
PHASES = ("D", "P", "M", "W")
FLOATING = re.compile(r"^(latest|\d+\.\d+)$")
RUN: ContextVar[str] = ContextVar("run")
"""The release tag of the publish a task runs (each concurrent publish sets its own)."""


class Schedule:
    """Lets each release pass its next phase only when the schedule says it is its turn."""

    def __init__(self, order: Sequence[tuple[str, str]]) -> None:
        self.pending = list(order)
        self.condition = anyio.Condition()

    async def gate(self, phase: str) -> None:
        """Wait until ``phase`` of the current release is first in the schedule, then pass."""
        run = RUN.get(None)
        if run is None:
            return
        async with self.condition:
            while (run, phase) in self.pending and self.pending[0] != (run, phase):
                await self.condition.wait()
            if self.pending and self.pending[0] == (run, phase):
                self.pending.pop(0)
            self.condition.notify_all()

    async def drop(self, run: str, phase: str | None = None) -> None:
        """Forget ``run``'s ``phase`` (or all its phases): it will not happen."""
        async with self.condition:
            self.pending = [
                token
                for token in self.pending
                if token[0] != run or (phase is not None and token[1] != phase)
            ]
            self.condition.notify_all()


def interleavings(runs: Sequence[str]) -> Iterator[list[tuple[str, str]]]:
    """Every order of the runs' phases that keeps each run's own phases in order."""
    slots = [run for run in runs for _ in PHASES]
    for order in sorted(set(itertools.permutations(slots))):
        seen: dict[str, int] = {}
        schedule = []
        for run in order:
            schedule.append((run, PHASES[seen.get(run, 0)]))
            seen[run] = seen.get(run, 0) + 1
        yield schedule


Observations = tuple[object, ...]


def observations(order: Sequence[tuple[str, str]]) -> Observations:
    """What of an interleaving can change how it ends: for each run's reads (D and M decide from
    the registry), how many of each other run's writes (P its version tag, W its floating tags)
    came before; and the order of the floating writes (the last one stays)."""
    position = {token: index for index, token in enumerate(order)}
    runs = sorted({run for run, _ in order})
    seen = [
        sum(position[(other, write)] < position[(run, read)] for write in ("P", "W"))
        for run in runs
        for other in runs
        if other != run
        for read in ("D", "M")
    ]
    return (*seen, tuple(sorted(runs, key=lambda run: position[(run, "W")])))


def representative_interleavings(runs: Sequence[str]) -> list[list[tuple[str, str]]]:
    """One interleaving (the first in order) for each way the runs can observe each other."""
    chosen: dict[Observations, list[tuple[str, str]]] = {}
    for order in interleavings(runs):
        chosen.setdefault(observations(order), order)
    return list(chosen.values())


def install_gates(
    monkeypatch: pytest.MonkeyPatch, engine: StandInEngine, schedule: Schedule
) -> None:
    """Put the schedule's gates on the four phases of every publish."""
    published = Pipeline._published

    async def decide(self: Pipeline, client: RegistryClient, tag: str) -> dict[str, Any]:
        await schedule.gate("D")
        return await published(self, client, tag)

    push = engine._publish

    async def push_version(leaf: Any, chain: Any) -> str:
        await schedule.gate("P")
        return await push(leaf, chain)

    move = finishing.move_floating

    async def move_floating(client: RegistryClient, image: Any, final: Any) -> Any:
        await schedule.gate("M")
        finished = await move(client, image, final)
        await schedule.drop(RUN.get(), "W")  # no (more) floating write to wait for
        return finished

    put_manifest = RegistryClient.put_manifest

    async def put(self: RegistryClient, repository: str, reference: str, *args: Any) -> str:
        if FLOATING.match(reference):
            await schedule.gate("W")
        return await put_manifest(self, repository, reference, *args)

    monkeypatch.setattr(Pipeline, "_published", decide)
    monkeypatch.setattr(engine, "_publish", push_version)
    monkeypatch.setattr(publishing, "move_floating", move_floating)
    monkeypatch.setattr(RegistryClient, "put_manifest", put)
    monkeypatch.setattr(publishing, "SETTLE_SECONDS", 0.5)


async def publish(registry: str, owner: str, tag: str) -> list[str]:
    """``dagger call publish --tag TAG``: the references it prints."""
    pipeline = Pipeline(
        source=dag.directory(), build_files=dag.directory(), registry=registry, owner=owner
    )
    secret = dag.load_secret_from_id(dagger.SecretID(TOKEN_ID))
    output = await pipeline.publish(tag, username="bot", password=secret, **signing_flags())
    return references_of(output)


async def publish_concurrently(
    registry: str, owner: str, tags: Sequence[str], schedule: Schedule
) -> dict[str, list[str]]:
    """Run one publish per tag at once; each one's references."""
    results: dict[str, list[str]] = {}

    async def run(tag: str) -> None:
        RUN.set(tag)
        try:
            results[tag] = await publish(registry, owner, tag)
        finally:
            await schedule.drop(tag)

    async with anyio.create_task_group() as group:
        for tag in tags:
            group.start_soon(run, tag)
    return results


async def assert_sequential_state(registry: str, owner: str) -> None:
    """Every floating tag on the highest stable version of its scope; no floating tag else."""
    async with RegistryClient(registry) as client:
        for image in ("api", "worker"):
            path = f"{owner}/qm-nmr-calc-{image}"
            tags = await client.list_tags(path)
            digests = {tag: (await client.get_manifest(path, tag)).digest for tag in tags}
            stable = [v for v in published_versions(tags) if v.prerelease is None]
            expected = {LATEST: max(stable)}
            for version in stable:
                minor = f"{version.major}.{version.minor}"
                scope = [v for v in stable if (v.major, v.minor) == (version.major, version.minor)]
                expected[minor] = max(scope)
            floating = {tag for tag in tags if FLOATING.match(tag)}
            assert floating == set(expected), (image, tags)
            for tag, version in expected.items():
                assert digests[tag] == digests[str(version)], f"{image}: {tag} not on {version}"


RECORDED_SCANS = RecordedScans()
"""syft runs once per platform for this module: SBOMs are not what these tests are about."""


@pytest.fixture
def engine(registry: RegistryServer, monkeypatch: pytest.MonkeyPatch) -> StandInEngine:
    """A stand-in engine that pushes into the test registry."""
    standin = StandInEngine(registry.host, secrets={TOKEN_ID: "t"}, recorded_scans=RECORDED_SCANS)
    standin.install(monkeypatch)
    return standin


TWO_RELEASES = ("v2.4.1", "v2.5.0")
"""A backport and a new minor at once, after 2.4.0: the case users hit."""


@pytest.mark.parametrize(
    "order",
    representative_interleavings(TWO_RELEASES),
    ids=lambda order: " ".join(("old" if r == TWO_RELEASES[0] else "new") + p for r, p in order),
)
async def test_two_releases_at_once_end_as_one_after_the_other(
    registry: RegistryServer,
    engine: StandInEngine,
    monkeypatch: pytest.MonkeyPatch,
    order: list[tuple[str, str]],
) -> None:
    owner = "t" + secrets.token_hex(6)
    await publish(registry.host, owner, "v2.4.0")
    schedule = Schedule(order)
    install_gates(monkeypatch, engine, schedule)

    references = await publish_concurrently(registry.host, owner, TWO_RELEASES, schedule)

    assert set(references) == set(TWO_RELEASES)  # both published, both verified
    await assert_sequential_state(registry.host, owner)
    # each release printed only tags it holds in the end
    for tag, lines in references.items():
        printed = {line.split("@")[0].rsplit(":", 1)[1] for line in lines}
        assert tag.removeprefix("v") in printed
        if tag == "v2.4.1":
            assert LATEST not in printed or all("2.5.0" not in line for line in lines)


def test_the_older_release_deciding_first_and_writing_last_is_among_the_schedules() -> None:
    older, newer = TWO_RELEASES
    wanted = [(older, "D"), (newer, "D"), (newer, "P"), (newer, "M"), (newer, "W")]
    wanted += [(older, "P"), (older, "M"), (older, "W")]
    assert wanted in list(interleavings(TWO_RELEASES))
    represented = {observations(order) for order in representative_interleavings(TWO_RELEASES)}
    assert observations(wanted) in represented


def test_the_schedules_run_cover_every_way_two_releases_observe_each_other() -> None:
    """26 of the 70 interleavings are run: every other one reads and writes as one of them."""
    every = list(interleavings(TWO_RELEASES))
    chosen = representative_interleavings(TWO_RELEASES)

    assert {observations(order) for order in every} == {observations(order) for order in chosen}
    assert (len(every), len(chosen)) == (70, 26)
    assert all(order in every for order in chosen)


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    tags=st.lists(
        st.sampled_from(["v1.0.1", "v1.1.0", "v1.1.1", "v1.2.0", "v2.0.0", "v1.3.0-rc.1"]),
        min_size=2,
        max_size=3,
        unique=True,
    ),
    choices=st.lists(st.integers(min_value=0, max_value=2), min_size=12, max_size=12),
)
async def test_any_interleaving_of_concurrent_releases_ends_as_one_after_the_other(
    registry: RegistryServer,
    engine: StandInEngine,
    tags: list[str],
    choices: list[int],
) -> None:
    owner = "t" + secrets.token_hex(6)
    with pytest.MonkeyPatch.context() as patch:
        engine.install(patch)
        await publish(registry.host, owner, "v1.0.0")
        schedule = Schedule(random_interleaving(tags, choices))
        install_gates(patch, engine, schedule)
        references = await publish_concurrently(registry.host, owner, tags, schedule)
    assert set(references) == set(tags)
    await assert_sequential_state(registry.host, owner)


def random_interleaving(runs: Sequence[str], choices: Sequence[int]) -> list[tuple[str, str]]:
    """An order of every run's phases, each run's in order, picked by ``choices``."""
    remaining = {run: list(PHASES) for run in runs}
    order = []
    picks = iter(choices)
    while any(remaining.values()):
        live = [run for run in runs if remaining[run]]
        run = live[next(picks, 0) % len(live)]
        order.append((run, remaining[run].pop(0)))
    return order


async def test_a_release_ends_while_a_higher_one_has_yet_to_move_its_floating_tags(
    registry: RegistryServer, engine: StandInEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The higher release has pushed its version tags but is still attesting: the lower one
    planned to move latest, finds the higher release published, leaves latest and succeeds."""
    owner = "t" + secrets.token_hex(6)
    await publish(registry.host, owner, "v2.4.0")
    older, newer = TWO_RELEASES
    # "end" is no phase of the older run: it leaves the schedule only when that run has ended,
    # so the newer run moves nothing before the older one has verified and returned.
    order = [(older, "D"), (newer, "D"), (newer, "P"), (older, "P"), (older, "M")]
    order += [(older, "W"), (older, "end"), (newer, "M"), (newer, "W")]
    schedule = Schedule(order)
    install_gates(monkeypatch, engine, schedule)

    references = await publish_concurrently(registry.host, owner, TWO_RELEASES, schedule)

    printed = {line.split("@")[0].rsplit(":", 1)[1] for line in references[older]}
    assert printed == {"2.4.1", "2.4"}  # latest was 2.5.0's to move
    await assert_sequential_state(registry.host, owner)
