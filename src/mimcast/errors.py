"""Errors that carry a message meant for the user.

Every entry point (Python API, data loaders, checkpoints, CLI) raises a subclass of
`MimcastError` for bad input; the CLI prints `error: <message>` on one line and exits with
code 2 instead of showing a traceback. Messages say what is wrong and where.
"""

from __future__ import annotations


class MimcastError(Exception):
    """Base class for errors caused by the user's input, files or configuration."""


class ConfigError(MimcastError, ValueError):
    """A configuration value, flag or model option is invalid."""


class DataError(MimcastError, ValueError):
    """A data file or array is missing, malformed or inconsistent."""


class CheckpointError(MimcastError):
    """A checkpoint is missing, truncated, tampered with or belongs to another model."""


class StorageError(MimcastError):
    """A file could not be written (a full disk, a read-only folder); the message names it.

    Not bad input: the CLI exits with code 1 instead of 2.
    """


class BusyError(MimcastError):
    """A run folder is in use by another mimcast process (its lock is held)."""
