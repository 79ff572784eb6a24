"""The package version, in the lowest layer: manifests record it, and `umarvel --version` prints it."""

__version__ = "0.1.0"
