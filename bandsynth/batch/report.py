"""The report of a batch: one row per galaxy (:class:`BatchReport`).

Part of `bandsynth.batch`; import the public names from there.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from astropy.table import Table

__all__ = ["BatchReport", "REPORT_COLUMNS", "STATUSES", "check_report_path", "report_row"]

#: Columns of the report, in order.
REPORT_COLUMNS = ("galaxy", "status", "band", "file", "output", "error", "warnings", "seconds")
#: ``status`` values: predicted now, a valid output of an earlier run kept, failed, a file not used.
STATUSES = ("done", "exists", "failed", "ignored")


class BatchReport:
    """What a batch did, galaxy by galaxy.

    Parameters
    ----------
    rows : iterable of mapping
        One mapping per row with keys among :data:`REPORT_COLUMNS`:
        ``galaxy`` (id), ``status`` (``"done"``: predicted now; ``"exists"``:
        a valid output of an earlier run was kept; ``"failed"``; ``"ignored"``:
        a file of the input folder that was not used), ``band`` and ``file``
        (the predicted band, or for a failure the input band and file at
        fault), ``output`` (the output path), ``error``, ``warnings`` (the
        galaxy's warnings -- domain checks, masked pixels --, ``" | "``-separated)
        and ``seconds``.

    Attributes
    ----------
    table : `~astropy.table.Table`
        Every row.

    Examples
    --------
    >>> r = BatchReport([{"galaxy": "g1", "status": "exists", "band": "r"}])
    >>> r.ok, r.counts["exists"], len(r.succeeded)
    (True, 1, 1)
    """

    def __init__(self, rows):
        rows = [dict(r) for r in rows]
        for r in rows:
            unknown = set(r) - set(REPORT_COLUMNS)
            if unknown:
                raise ValueError(f"report row has unknown column(s) {sorted(unknown)}; expected {REPORT_COLUMNS}")
            if r.get("status") not in STATUSES:
                raise ValueError(f"report row status must be one of {STATUSES}, got {r.get('status')!r}")
        table = Table(
            {
                name: np.array(
                    [float(r.get(name) or 0.0) if name == "seconds" else str(r.get(name, "") or "") for r in rows],
                    dtype=float if name == "seconds" else str,
                )
                for name in REPORT_COLUMNS
            }
        )
        table.meta["comments"] = [
            "bandsynth predict-batch report: status done = predicted now, exists = valid output of an "
            "earlier run kept, failed = see error, ignored = input file not used"
        ]
        self._table = table

    @property
    def table(self) -> Table:
        """Every row (a copy)."""
        return self._table.copy()

    def _where(self, *statuses):
        return self._table[np.isin(self._table["status"], statuses)]

    @property
    def failed(self) -> Table:
        """Rows of galaxies that failed (empty when all went well)."""
        return self._where("failed")

    @property
    def succeeded(self) -> Table:
        """Rows of galaxies with a valid output: predicted now or kept from an earlier run."""
        return self._where("done", "exists")

    @property
    def counts(self) -> dict:
        """Number of rows per status."""
        return {s: int(np.count_nonzero(self._table["status"] == s)) for s in STATUSES}

    @property
    def ok(self) -> bool:
        """True when nothing failed."""
        return self.counts["failed"] == 0

    def write(self, path):
        """Write the report, atomically (an existing report is replaced): CSV for a ``.csv`` name, else ECSV.

        Parameters
        ----------
        path : str or os.PathLike
            Output file (``.ecsv``, ``.csv`` or no suffix: ECSV); its folder is created if needed.

        Raises
        ------
        ValueError
            A suffix of another format (``.json``, ``.fits``, ...).
        """
        from .._io import atomic_path

        path = Path(path)
        table_format = _report_format(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            self._table.write(tmp, format=table_format, overwrite=True)

    def __len__(self):
        return len(self._table)

    def __repr__(self):
        c = self.counts
        galaxies = int(np.sum(self._table["status"] != "ignored"))  # one row each, a repeated id too
        text = (
            f"<BatchReport: {galaxies} galax{'y' if galaxies == 1 else 'ies'}: {c['done']} predicted, "
            f"{c['exists']} already done, {c['failed']} failed"
        )
        return text + (f", {c['ignored']} file(s) ignored>" if c["ignored"] else ">")


def report_row(galaxy, status, *, band="", file="", output="", error="", warnings="", seconds=0.0):
    """One row of a :class:`BatchReport` (a dict with every column of :data:`REPORT_COLUMNS`).

    Parameters
    ----------
    galaxy : str
        Galaxy id (converted to `str`).
    status : str
        One of :data:`STATUSES` (checked by :class:`BatchReport`).
    band : str, optional
        The predicted band, or for a failure the input band at fault.
    file : str or os.PathLike, optional
        The input file at fault.
    output : str or os.PathLike, optional
        The output path.
    error : str, optional
        What went wrong.
    warnings : str, optional
        The galaxy's warnings, ``" | "``-separated.
    seconds : float, optional
        Time spent on the galaxy, in seconds (rounded to 0.1 ms).

    Returns
    -------
    dict
        Column name to value; text columns are strings.
    """
    return {
        "galaxy": str(galaxy),
        "status": status,
        "band": str(band),
        "file": str(file),
        "output": str(output),
        "error": str(error),
        "warnings": str(warnings),
        "seconds": round(float(seconds), 4),
    }


#: Report formats by file-name suffix (astropy table formats).
REPORT_FORMATS = {".ecsv": "ascii.ecsv", ".csv": "ascii.csv", "": "ascii.ecsv"}


def _report_format(path):
    suffix = Path(path).suffix.lower()
    if suffix not in REPORT_FORMATS:
        raise ValueError(f"report {path}: a report is an ECSV or CSV table; give a .ecsv or .csv file name, "
                         f"not {suffix}")
    return REPORT_FORMATS[suffix]


def check_report_path(path):
    """Refuse, before any work, a report path whose file is not an earlier batch report.

    A report replaces the file at its path; that must never be the manifest, a
    prediction or any other file given there by mistake.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    pathlib.Path

    Raises
    ------
    IsADirectoryError, FileExistsError
        ``path`` is a folder, or an existing file that is not a batch report (ECSV or CSV
        whose first column is ``galaxy``).
    ValueError
        A file name of another format than ECSV or CSV.
    """
    path = Path(path)
    _report_format(path)
    if path.is_dir():
        raise IsADirectoryError(f"report {path} is a folder; give the name of the ECSV file to write")
    if os.path.lexists(path):
        head = b""
        if path.is_file():
            with open(path, "rb") as fh:
                head = fh.read(4096)
        if not (head.startswith(b"# %ECSV") and b"- {name: galaxy," in head or head.startswith(b"galaxy,status,")):
            raise FileExistsError(f"report {path} exists and is not a batch report; it would be replaced: give "
                                  "another path")
    return path
