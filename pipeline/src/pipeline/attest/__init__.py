"""Attestations for every published digest: SBOM, provenance and signature, signed and stored.

``statements`` (in-toto statements and the predicate types every digest carries, pure),
``dsse`` (the DSSE envelope a statement is signed in), ``signing`` (Sigstore bundles: keyless in
production, a throwaway identity in rehearsals and tests; GitHub's OIDC token exchange),
``storage`` (bundles as OCI artifacts beside their subject, found through the ``sha256-<hex>``
tag) and ``check`` (what a verification reports about one digest); ``sbom`` and ``provenance``
make the predicates. Import from the modules: this package re-exports nothing, so reading a
statement never loads the HTTP or signing stack. Never imports ``dagger``.
"""
