# SPDX-License-Identifier: Apache-2.0
"""One error tree for everything a user can cause.

The CLI maps every ``BadnetsError`` to a one-line message and its ``exit_code`` (2: bad input; 1: a check ran and
failed, e.g. a signature that does not verify); anything else is a bug.
"""

from __future__ import annotations

__all__ = [
    "BadnetsError",
    "ConfigError",
    "DataError",
    "IntegrityError",
    "PackageError",
    "UnsafeFormatError",
    "VerificationError",
    "one_line",
]


def one_line(error: BaseException, limit: int) -> str:
    """A library's error message on one line (whitespace collapsed), cut to ``limit`` characters plus "…"."""
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[:limit] + "…"


class BadnetsError(Exception):
    """Base class: a problem the user can fix. The message names the problem and the fix."""

    exit_code = 2


class ConfigError(BadnetsError, ValueError):
    """A spec field or CLI option has a bad value."""


class DataError(BadnetsError):
    """A dataset file is missing, unreadable or malformed."""


class IntegrityError(DataError):
    """A file's checksum does not match the expected digest."""


class UnsafeFormatError(BadnetsError):
    """A file would need unsafe deserialisation (pickle) to load."""


class PackageError(BadnetsError):
    """A model package is malformed, altered or unsafe to open (unlisted file, symlink, bad name)."""


class VerificationError(BadnetsError):
    """A check ran and the artefact failed it (signature, manifest): the file must not be trusted."""

    exit_code = 1
