"""The package version, on its own so that every module can record it without importing the package's API."""

__version__ = "0.1.0"
