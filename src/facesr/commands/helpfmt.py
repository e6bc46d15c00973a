"""Command lists in ``--help`` that show each command's whole first paragraph, wrapped.

Why: click shortens each command's description to one line of about 45 characters and cuts it at
the first full stop, so ``facesr --help`` read "Restore every face in photos INPUT..." and
"Measure parameters, GFLOPs/face, CPU...". A newcomer picks a command from that list, so here the
first paragraph of the docstring (or an explicit ``short_help``) is shown in full and wrapped to
the terminal by click's own definition-list formatter.
"""

from __future__ import annotations

import inspect

import click


def summary(cmd: click.Command) -> str:
    """The command's ``short_help``, else the first paragraph of its help, on one line."""
    if cmd.short_help:
        return cmd.short_help
    text = inspect.cleandoc(cmd.help or "")
    return " ".join(text.split("\n\n", 1)[0].split())


class FullHelpGroup(click.Group):
    """A click group whose ``--help`` lists every sub-command with its full summary."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                rows.append((name, summary(cmd)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)
