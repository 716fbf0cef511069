"""The exceptions of vecport: one class per exit code of the command line."""

from __future__ import annotations

import builtins


class Error(Exception):
    """Any error of vecport. ``exit_code`` is the command line's for it."""

    exit_code = 1


class UsageError(Error, ValueError):
    """A bad location, option or value (exit code 2)."""

    exit_code = 2


class SnapshotError(Error):
    """A snapshot damaged, invalid or of an unsupported version (exit code 3)."""

    exit_code = 3


class ConnectionError(Error, builtins.ConnectionError):
    """Network or server trouble, after the retries (exit code 4)."""

    exit_code = 4


class CredentialsError(Error, PermissionError):
    """Credentials missing or refused (exit code 5)."""

    exit_code = 5


class NotFoundError(Error, LookupError):
    """A collection, index, table or snapshot collection missing (exit code 6)."""

    exit_code = 6


class DataError(Error):
    """The target is incompatible or refused data, or a feature is unsupported (exit code 7)."""

    exit_code = 7


class FileSystemError(Error, OSError):
    """Local file system trouble (exit code 8)."""

    exit_code = 8


class BusyError(Error):
    """Another run holds the export's or import's lock (exit code 9)."""

    exit_code = 9


class InternalError(Error):
    """A bug in vecport (exit code 70)."""

    exit_code = 70


__all__ = [
    "BusyError",
    "ConnectionError",
    "CredentialsError",
    "DataError",
    "Error",
    "FileSystemError",
    "InternalError",
    "NotFoundError",
    "SnapshotError",
    "UsageError",
]
