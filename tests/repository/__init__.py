"""Checks on this repository's other files: Dockerfiles, workflows, packaging, image inputs."""
