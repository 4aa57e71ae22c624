"""Mail infrastructure: MJML rendering, message building and SMTP transport."""
