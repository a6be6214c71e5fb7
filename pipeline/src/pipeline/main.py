"""The Dagger module: placeholder, filled in by the publish work."""
