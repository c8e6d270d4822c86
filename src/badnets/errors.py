# SPDX-License-Identifier: Apache-2.0
"""One error tree for everything a user can cause.

The CLI maps every ``BadnetsError`` to a one-line message and exit code 2; anything else is a bug.
"""

from __future__ import annotations

__all__ = ["BadnetsError", "ConfigError", "DataError", "IntegrityError", "UnsafeFormatError"]


class BadnetsError(Exception):
    """Base class: a problem the user can fix. The message names the problem and the fix."""


class ConfigError(BadnetsError, ValueError):
    """A spec field or CLI option has a bad value."""


class DataError(BadnetsError):
    """A dataset file is missing, unreadable or malformed."""


class IntegrityError(DataError):
    """A file's checksum does not match the expected digest."""


class UnsafeFormatError(BadnetsError):
    """A file would need unsafe deserialisation (pickle) to load."""
