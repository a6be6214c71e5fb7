"""Image tests: real BuildKit builds of the Dockerfiles from the upstream sources."""
