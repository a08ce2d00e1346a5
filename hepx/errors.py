"""Exceptions raised by hepx.

Every error caused by what a user handed to hepx (a file, a config, an array) is a
:class:`HepxError`; the CLI turns it into a one-line message and exit code 2.
"""

from __future__ import annotations


class HepxError(Exception):
    """Base class of all errors caused by user input."""


class InputError(HepxError, ValueError):
    """A file or array is missing, unreadable, or not of the expected layout."""


class ConfigError(HepxError, ValueError):
    """A configuration key or value is unknown or of the wrong type."""


class CheckpointError(HepxError, ValueError):
    """A checkpoint or run directory is missing, corrupted, or from another model/dataset."""
