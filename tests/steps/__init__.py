"""Registry-side release steps (``pipeline.steps``): published, finishing, verify, concurrency."""
