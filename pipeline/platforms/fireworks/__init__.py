"""The Fireworks platform, through the official ``fireworks-ai`` SDK."""
