"""Staff home and admin tools (test email)."""
