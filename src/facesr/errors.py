"""Exceptions that the CLI turns into one-line messages and a non-zero exit.

Anything a user can cause (a bad file, a wrong path, a misspelt config key) raises a
`FacesrError` subclass with a message that says what is wrong and what to do. The CLI prints
``facesr: error: <message>`` and exits with status 2; it never shows a traceback for these.
Programming errors are left as ordinary exceptions so that they stay visible.
"""

from __future__ import annotations


class FacesrError(Exception):
    """Base class for user-facing errors (one line, no traceback)."""


class ImageReadError(FacesrError):
    """An input image cannot be decoded, is too large, or is not an image at all."""


class ConfigError(FacesrError):
    """A config file or override is invalid (unknown key, wrong type, bad syntax)."""


class DataError(FacesrError):
    """Required data (shared data folder, prepared set, benchmark) is missing or inconsistent."""


class ModelError(FacesrError):
    """A model name is unknown, a weights file is missing or its checksum does not match."""
