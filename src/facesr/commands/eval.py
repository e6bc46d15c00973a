"""`facesr` sub-commands for this area (see facesr.cli). Heavy imports stay inside command bodies."""

from __future__ import annotations

import click


def register(group: click.Group) -> None:
    """Add this area's commands to the root group."""
