"""The Dagger functions (``pipeline.main``, ``pipeline.publishing``) on the stand-in engine."""
