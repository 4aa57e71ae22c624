"""The JSON API: per-user bearer tokens, paginated resources, an OpenAPI document."""
