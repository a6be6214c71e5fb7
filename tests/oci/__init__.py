"""The OCI registry client (``pipeline.oci``): client, transport, auth, names, documents, text."""
