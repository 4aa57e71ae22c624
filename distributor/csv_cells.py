"""The one defence against spreadsheet formulas in every CSV download (CSV injection, OWASP).

A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab, a carriage return or a line feed is read
as a formula by Excel, LibreOffice and Google Sheets. Such text cells get a leading apostrophe.
"""

from __future__ import annotations

FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def escape_cell(text: str) -> str:
    """``text`` as a spreadsheet shows it literally: risky cells get a leading apostrophe."""
    return "'" + text if text.startswith(FORMULA_START) else text
