"""imagestudio: a self-hostable image generation studio."""

__version__ = "0.1.0"
