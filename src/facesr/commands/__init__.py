"""CLI sub-commands, one module per area; each exposes ``register(app)``.

Modules here import only Typer and the standard library at module level (fast ``--help``).
"""
