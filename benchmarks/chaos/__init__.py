"""``make chaos``: fault injection against the delivery engine (see ``__main__``)."""
