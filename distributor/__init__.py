"""distributor: press-release distribution for press offices and the journalists they serve."""

from distributor.app import create_app

__all__ = ["create_app"]
