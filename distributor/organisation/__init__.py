"""The organisation that runs this distributor: name, address, time zone, tracking policy."""
