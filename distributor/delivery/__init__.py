"""Sending releases: the delivery ledger, rendering once per release, fast SMTP."""
