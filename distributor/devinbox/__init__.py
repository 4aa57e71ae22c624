"""The development SMTP inbox: an aiosmtpd server that keeps every message for the web UI."""
