"""Pure Block Kit renderers: domain values in, Slack messages (with their text fallback) out."""
