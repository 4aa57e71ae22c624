"""Mail to staff: test mails and workflow notifications, each recorded with its outcome."""
