"""The steps of a release that talk to a registry, without Dagger.

``published`` (what a repository holds before a release), ``finishing`` (index annotations and
floating-tag moves after the push), ``verify`` (what the registry serves against the plan), and
what every step shares: ``concurrency`` (the one fan-out) and ``progress`` (a span per step).
"""
