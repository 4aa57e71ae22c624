"""The embargo room: personal links to embargoed releases, terms, access standing and logs."""
