"""A stateful fake of the Fireworks API over real HTTP (see server.py)."""

from .server import FakeFireworks
from .wire import Faults

__all__ = ["FakeFireworks", "Faults"]
