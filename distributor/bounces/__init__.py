"""Bounces and complaints: DSNs, ARF reports and ESP webhooks turned into suppressions."""
