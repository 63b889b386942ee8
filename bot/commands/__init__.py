"""The `sftbot` commands, one module per subject; each registers its commands with
``bot.command.command`` when imported (``bot/cli.py`` imports them all)."""
