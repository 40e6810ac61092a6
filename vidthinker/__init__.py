"""VidThinker: instruction-grounded video annotation (VideoITG-style) and the VideoITG frame selector."""

__version__ = "0.1.0"
