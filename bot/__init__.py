"""sftbot: supervised fine-tuning from Slack or the terminal, end to end."""

__version__ = "0.1.0"
