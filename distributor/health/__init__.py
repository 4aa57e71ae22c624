"""Liveness and readiness: is the database reachable, is the broker reachable."""
