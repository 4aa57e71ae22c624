"""Delivery and engagement reports: per release, per journalist, and the organisation dashboard."""
