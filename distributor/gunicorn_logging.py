"""gunicorn's access log without the tokens in link paths (``--logger-class``)."""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

from distributor.logs import redact_path


class RedactingLogger(Logger):
    """Access-log atoms with the request line and path redacted (see ``logs.redact_path``)."""

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> Any:
        atoms = super().atoms(resp, req, environ, request_time)
        for key in ("r", "U"):
            if isinstance(atoms.get(key), str):
                atoms[key] = redact_path(atoms[key])
        return atoms
