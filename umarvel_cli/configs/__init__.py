"""Stage default configs (YAML), shipped with the package."""
