"""Releases: compose, review, embargo, publish; the public newsroom reads them."""
