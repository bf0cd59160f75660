"""The circular materials exchange: the pure core and its shell (settings, adapters, CLI)."""

__version__ = "0.1.0"
