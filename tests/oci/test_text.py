"""Server text shown to people: one printable line, never a workflow command."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pipeline.oci.client import Limits, RegistryClient, RegistryError
from pipeline.oci.text import printable, safe_line, safe_lines

from tests.support.hostile_registry import (
    HostileRegistry,
    status,
)

pytestmark = pytest.mark.anyio

OWNER = "hostile"
REPO = f"{OWNER}/qm-nmr-calc-api"
FAST = Limits(read_timeout=1.0, deadline=2.0, retry_pauses=(0.05, 0.05), max_retry_after=0.3)


# --- server text printed ----------------------------------------------------------------------

HOSTILE_TEXT = "ok\n::add-mask::x\r\x1b[2J\u202e\u2028::stop-commands::y"


async def test_server_text_in_errors_is_one_safe_line() -> None:
    body = json.dumps({"errors": [{"code": "X\n::", "message": HOSTILE_TEXT}]}).encode()
    with HostileRegistry(status(400, body)) as server:
        async with RegistryClient(server.host, limits=FAST) as client:
            with pytest.raises(RegistryError) as caught:
                await client.get_manifest(REPO, "2.4.0")
    message = str(caught.value)
    assert message.isprintable()
    assert "\\x1b" in message


@given(st.text())
def test_printable_text_is_one_line_without_controls(text: str) -> None:
    shown = printable(text)
    assert "\n" not in shown
    assert "\r" not in shown
    assert all(char.isprintable() or char == " " for char in shown)


@given(st.text())
def test_no_safe_line_begins_a_workflow_command(text: str) -> None:
    assert not safe_line(text).lstrip().startswith("::")
    for line in safe_lines(text).split("\n"):
        assert not line.lstrip().startswith("::")
