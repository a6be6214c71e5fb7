"""The tests, laid out as the package: rules/, oci/, steps/, the Dagger layer in dagger/."""
