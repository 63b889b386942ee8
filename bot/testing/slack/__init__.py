"""A stateful fake of the Slack Web API over real HTTP (see server.py)."""

from .server import FakeSlack
from .state import Msg, Upload, render

__all__ = ["FakeSlack", "Msg", "Upload", "render"]
