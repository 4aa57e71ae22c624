"""Staff accounts: who may log in, and with which role."""
