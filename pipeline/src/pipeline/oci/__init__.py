"""An OCI registry client that bounds whatever a registry sends.

The public surface is re-exported here; the modules beside it are its parts:
``client`` (tags, manifests, configs, writes), ``transport`` (HTTP limits, deadlines, retries),
``auth`` (challenges, tokens, scrubbing secrets), ``names`` (reference and digest grammar),
``documents`` (manifest and config shapes) and ``text`` (escaping server text for logs).

The surface is loaded on first use, so the offline plan, which needs only ``names``, never
imports the HTTP stack.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.oci.client import Manifest as Manifest
    from pipeline.oci.client import RegistryClient as RegistryClient
    from pipeline.oci.client import RegistryError as RegistryError
    from pipeline.oci.client import check_annotations as check_annotations
    from pipeline.oci.client import serialize_json as serialize_json
    from pipeline.oci.documents import config_platform_and_labels as config_platform_and_labels
    from pipeline.oci.documents import platform_of as platform_of
    from pipeline.oci.text import printable as printable
    from pipeline.oci.text import safe_line as safe_line
    from pipeline.oci.transport import WRITE_ACCESS_HINT as WRITE_ACCESS_HINT

SURFACE = {
    "Manifest": "pipeline.oci.client",
    "RegistryClient": "pipeline.oci.client",
    "RegistryError": "pipeline.oci.client",
    "check_annotations": "pipeline.oci.client",
    "serialize_json": "pipeline.oci.client",
    "config_platform_and_labels": "pipeline.oci.documents",
    "platform_of": "pipeline.oci.documents",
    "printable": "pipeline.oci.text",
    "safe_line": "pipeline.oci.text",
    "WRITE_ACCESS_HINT": "pipeline.oci.transport",
}
"""Each public name and the module that defines it."""

__all__ = [
    "WRITE_ACCESS_HINT",
    "Manifest",
    "RegistryClient",
    "RegistryError",
    "check_annotations",
    "config_platform_and_labels",
    "platform_of",
    "printable",
    "safe_line",
    "serialize_json",
]


def __getattr__(name: str) -> Any:  # noqa: ANN401 - the module protocol
    """Import a public name's module only when the name is asked for."""
    if name in SURFACE:
        return getattr(import_module(SURFACE[name]), name)
    raise AttributeError(f"module 'pipeline.oci' has no attribute {name!r}")
