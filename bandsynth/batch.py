"""Archive-scale prediction: one synthetic band per galaxy, for many galaxies, with Dask.

:func:`predict_many` maps `Translator.predict <bandsynth.Translator.predict>`
over a list of galaxies -- an ECSV manifest, a `~astropy.table.Table`, a
`~bandsynth.datasets.folder.FolderScan` or a list of ``(id, {band: path})`` --
and writes one FITS file per galaxy, ``OUT/<id>_<band>_synth.fits``, in the
archive format of `bandsynth.SyntheticBand.write`.

* **Where the work runs.**  By default on this machine, on a
  `distributed.LocalCluster` of single-threaded worker processes (one per core
  unless ``workers=`` says otherwise), each predicting one galaxy at a time with
  ``torch_threads`` network threads (default: the cores divided among the
  workers).  Processes rather than threads because reading and writing FITS is
  Python code holding the GIL, and because `warnings.catch_warnings`, which
  astropy and bandsynth use on every galaxy, is not thread-safe before Python
  3.14: concurrent threads corrupt the process's warning filters (a harmless FITS
  ``VerifyWarning`` in one thread can become an exception in another).  Each
  worker loads the model once (by name or path, SHA-256 checked); a worker
  killed by one galaxy (e.g. out of memory) is restarted and only that galaxy
  fails.  Starting the processes costs a few seconds (importing torch), repaid
  on any archive.  As with any multiprocessing code, a script that calls
  :func:`predict_many` needs the ``if __name__ == "__main__":`` guard.  With
  ``scheduler=`` (a ``dask.distributed`` scheduler address or
  `distributed.Client`) the galaxies go to that cluster instead: inputs,
  outputs and a model given by path must then be on a file system the workers
  share (a model that exists only in memory is sent to them).  A worker with
  several threads also runs one galaxy at a time and gives its cores to the
  network, so start cluster workers as ``dask worker --nthreads 1 --nworkers N``
  to spread galaxies over processes.
* **Resumable.**  Outputs are written atomically (temporary file, then
  rename), so a run killed at any moment leaves only complete files.  Started
  again, it keeps each existing output that is valid -- readable, its
  ``CHECKSUM``/``DATASUM`` correct, made by this model (``BSMODEL``,
  ``BSSHA256``) for this band from these very input files (their SHA-256) --
  and predicts the rest.  An existing output that is not valid (corrupt, stale,
  another model) is replaced only with ``overwrite=True``, else reported.
* **One bad galaxy never stops the batch.**  Each failure (unreadable or
  truncated file, missing band, all-NaN image, shapes or WCS that disagree,
  image smaller than the network's receptive field, unsafe id...) becomes a
  row of the `BatchReport`; the rest is predicted.  Images too large for one
  network pass are predicted in overlapping tiles by the translator.
* **Safe names.**  A galaxy id is used in a file name only if it cannot leave
  the output folder (no ``/``, ``\\``, leading ``.``, control characters).

Examples
--------
>>> from bandsynth.batch import BatchReport
>>> report = BatchReport([
...     {"galaxy": "g1", "status": "done", "band": "r", "output": "out/g1_r_synth.fits"},
...     {"galaxy": "g2", "status": "failed", "band": "Ks", "file": "g2_k.fits",
...      "error": "band 'Ks': FITS file 'g2_k.fits' not found"},
... ])
>>> report
<BatchReport: 2 galaxies: 1 predicted, 0 already done, 1 failed>
>>> report.failed["galaxy"].tolist()
['g2']
"""

from __future__ import annotations

import glob
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from astropy.table import Table

__all__ = ["BatchReport", "predict_many", "read_manifest", "output_path"]

log = logging.getLogger(__name__)

#: Columns of the report, in order.
REPORT_COLUMNS = ("galaxy", "status", "band", "file", "output", "error", "seconds")
#: ``status`` values: predicted now, a valid output of an earlier run kept, failed, a file not used.
STATUSES = ("done", "exists", "failed", "ignored")

_MAX_ID_LENGTH = 200
# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_BAND_IN_MESSAGE = re.compile(r"band '([^']+)'")


# ---------------------------------------------------------------------- the report
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
        fault), ``output`` (the output path), ``error`` and ``seconds``.

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
        """Write the report as ECSV, atomically (an existing report is replaced)."""
        from ._io import atomic_path

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            self._table.write(tmp, format="ascii.ecsv", overwrite=True)

    def __len__(self):
        return len(self._table)

    def __repr__(self):
        c = self.counts
        galaxies = len({g for g, s in zip(self._table["galaxy"], self._table["status"]) if s != "ignored"})
        text = (
            f"<BatchReport: {galaxies} galax{'y' if galaxies == 1 else 'ies'}: {c['done']} predicted, "
            f"{c['exists']} already done, {c['failed']} failed"
        )
        return text + (f", {c['ignored']} file(s) ignored>" if c["ignored"] else ">")


def _row(galaxy, status, *, band="", file="", output="", error="", seconds=0.0):
    return {
        "galaxy": str(galaxy),
        "status": status,
        "band": str(band),
        "file": str(file),
        "output": str(output),
        "error": str(error),
        "seconds": round(float(seconds), 4),
    }


# ---------------------------------------------------------------------- names
def _id_problem(galaxy):
    """Why ``galaxy`` cannot name an output file, or None."""
    if not isinstance(galaxy, str) or not galaxy.strip():
        return "empty galaxy id"
    if len(galaxy) > _MAX_ID_LENGTH:
        return f"galaxy id is longer than {_MAX_ID_LENGTH} characters"
    if "/" in galaxy or "\\" in galaxy or os.path.isabs(galaxy):
        return f"galaxy id {galaxy!r} contains a path separator; it must not name a path outside the output folder"
    if galaxy.startswith("."):
        return f"galaxy id {galaxy!r} starts with '.'; ids must not name hidden files or parent folders"
    if any(ord(c) < 32 or ord(c) == 127 for c in galaxy):
        return f"galaxy id {galaxy!r} contains control characters"
    return None


def output_path(out_dir, galaxy, band) -> Path:
    """The output file of ``galaxy``: ``out_dir/<galaxy>_<band>_synth.fits``.

    Raises
    ------
    ValueError
        The id could name a file outside ``out_dir`` (path separators, a
        leading ``.``, control characters) or is empty.

    Examples
    --------
    >>> output_path("out", "NGC 1300", "r").as_posix()
    'out/NGC 1300_r_synth.fits'
    >>> output_path("out", "../../etc/x", "r")
    Traceback (most recent call last):
    ...
    ValueError: galaxy id '../../etc/x' contains a path separator; it must not name a path outside the output folder
    """
    from .bands import get_band

    problem = _id_problem(galaxy)
    if problem:
        raise ValueError(problem)
    out_dir = Path(out_dir)
    path = out_dir / f"{galaxy}_{get_band(band).name}_synth.fits"
    # Belt and braces: the file must sit directly in out_dir.
    if os.path.dirname(os.path.abspath(path)) != os.path.abspath(out_dir):
        raise ValueError(f"galaxy id {galaxy!r} would write outside the output folder {str(out_dir)!r}")
    return path


# ---------------------------------------------------------------------- inputs
def _band_columns(colnames, what):
    """Map band name -> column for the columns that name a band (others are ignored)."""
    from .bands import get_band

    found = {}
    for name in colnames:
        if name.lower() in ("id", "file"):
            continue
        try:
            band = get_band(name).name
        except ValueError:
            continue
        if band in found:
            raise ValueError(f"{what}: columns {found[band]!r} and {name!r} both name band {band}")
        found[band] = name
    return found


def _cell(value):
    """A table cell as a stripped string, '' when masked or empty."""
    if value is None or value is np.ma.masked or (isinstance(value, np.ma.MaskedArray) and value.mask.all()):
        return ""
    return str(value).strip()


def read_manifest(manifest, *, bands, base_dir=None):
    """Galaxies of a manifest: ``(items, problems)``.

    The manifest (ECSV, or any table `astropy.table.Table.read` understands)
    has an ``id`` column and either one column per band (named by any alias of
    the band, e.g. ``NUV``, ``K``) holding one FITS file per band, or a
    ``file`` column holding a multi-extension file whose image HDUs are named
    after their bands (``EXTNAME``); a row may use either.  Relative paths are
    resolved against the manifest's folder (``base_dir`` for a Table).  Other
    columns are ignored.

    Parameters
    ----------
    manifest : str, os.PathLike or `~astropy.table.Table`
    bands : sequence of str
        Bands every galaxy needs (the model's inputs).
    base_dir : str or os.PathLike, optional
        Folder of relative paths (default: the manifest's folder, or the
        current folder for a Table).

    Returns
    -------
    items : list of (str, dict or str)
        ``(id, {band: path})`` or ``(id, multi-extension path)``, absolute paths.
    problems : list of dict
        Report rows (status ``"failed"``) of rows that cannot be used: empty
        id, missing band file.

    Raises
    ------
    ValueError
        The table cannot be read, has no ``id`` column, or no column for a
        needed band (and no ``file`` column).

    Examples
    --------
    >>> from astropy.table import Table
    >>> t = Table({"id": ["g1", "g2"], "NUV": ["g1_nuv.fits", "g2_nuv.fits"], "K": ["g1_k.fits", ""]})
    >>> items, problems = read_manifest(t, bands=["NUV", "Ks"], base_dir="/data")
    >>> items
    [('g1', {'NUV': '/data/g1_nuv.fits', 'Ks': '/data/g1_k.fits'})]
    >>> problems[0]["galaxy"], problems[0]["error"]
    ('g2', 'no file for band Ks in the manifest')
    """
    from .bands import get_band

    if isinstance(manifest, Table):
        table, what = manifest, "manifest table"
        base = Path(base_dir) if base_dir is not None else Path.cwd()
    elif isinstance(manifest, (str, os.PathLike)):
        path = Path(manifest)
        what = f"manifest {str(path)!r}"
        if not path.is_file():
            raise FileNotFoundError(f"{what} not found")
        try:
            table = Table.read(path, format="ascii.ecsv") if path.suffix.lower() == ".ecsv" else Table.read(path)
        except Exception as err:  # astropy raises many types for malformed tables
            raise ValueError(f"{what} cannot be read as a table: {err}") from err
        base = Path(base_dir) if base_dir is not None else path.resolve().parent
    else:
        raise TypeError(f"manifest must be a path or an astropy Table, got {type(manifest).__name__}")
    needed = [get_band(b).name for b in bands]
    lower = {name.lower(): name for name in table.colnames}
    if "id" not in lower:
        raise ValueError(f"{what} has no 'id' column (columns: {', '.join(table.colnames)})")
    id_col, file_col = lower["id"], lower.get("file")
    columns = _band_columns(table.colnames, what)
    missing = [b for b in needed if b not in columns]
    if missing and file_col is None:
        raise ValueError(
            f"{what} has no column for band(s) {', '.join(missing)} (columns: {', '.join(table.colnames)}); "
            f"the model needs {', '.join(needed)}: add one column per band, or a 'file' column of "
            "multi-extension files"
        )

    def absolute(text):
        return os.path.abspath(base / os.path.expanduser(text))

    items, problems = [], []
    for n, row in enumerate(table, start=1):
        galaxy = _cell(row[id_col])
        if not galaxy:
            problems.append(_row(f"(row {n})", "failed", error=f"{what} row {n} has an empty id"))
            continue
        single = _cell(row[file_col]) if file_col else ""
        cells = {b: _cell(row[columns[b]]) for b in needed if b in columns}
        if single:
            if any(cells.values()):
                problems.append(_row(galaxy, "failed", file=single,
                                     error="the row gives both a multi-extension 'file' and per-band files"))
                continue
            items.append((galaxy, absolute(single)))
            continue
        lacking = [b for b in needed if not cells.get(b)]
        for b in lacking:
            problems.append(_row(galaxy, "failed", band=b, error=f"no file for band {b} in the manifest"))
        if not lacking:
            items.append((galaxy, {b: absolute(cells[b]) for b in needed}))
    return items, problems


def _from_scan(scan, needed):
    """Items and report rows of a `~bandsynth.datasets.folder.FolderScan`."""
    items, rows, bad = [], [], set()
    known = set(scan.ids) | set(scan.incomplete)
    for p in scan.problems:
        galaxy, band, file, error = str(p["id"]), str(p["band"]), str(p["file"]), str(p["error"])
        if galaxy in known and band in needed:
            bad.add(galaxy)
            rows.append(_row(galaxy, "failed", band=band, file=file, error=error))
        else:
            rows.append(_row(galaxy, "ignored", band=band, file=file, error=error))
    for galaxy in scan.ids:
        if galaxy not in bad:
            files = scan.files[galaxy]
            items.append((galaxy, {b: os.path.abspath(files[b]) for b in needed}))
    return items, rows


def _normalise_items(items, needed, base_dir):
    """``(items, rows)`` from any accepted form of ``items``."""
    from .datasets.folder import FolderScan

    if isinstance(items, (str, os.PathLike, Table)):
        return read_manifest(items, bands=needed, base_dir=base_dir)
    if isinstance(items, FolderScan):
        return _from_scan(items, needed)
    if isinstance(items, Mapping) or not isinstance(items, Iterable):
        raise TypeError(
            "items must be a manifest path, an astropy Table, a FolderScan or a list of "
            f"(id, {{band: path}}) pairs, got {type(items).__name__}"
        )
    out, rows = [], []
    for n, entry in enumerate(items):
        if not (isinstance(entry, (tuple, list)) and len(entry) == 2):
            raise TypeError(f"items[{n}] must be an (id, {{band: path}}) pair, got {entry!r}")
        galaxy, files = entry
        galaxy = str(galaxy)
        if isinstance(files, (str, os.PathLike)):
            out.append((galaxy, os.path.abspath(os.fspath(files))))
            continue
        if not isinstance(files, Mapping):
            raise TypeError(
                f"items[{n}]: files must be a mapping of band to path or one path, got {type(files).__name__}"
            )
        from .bands import get_band

        resolved = {get_band(b).name: os.path.abspath(os.fspath(p)) for b, p in files.items()}
        lacking = [b for b in needed if b not in resolved]
        for b in lacking:
            rows.append(_row(galaxy, "failed", band=b, error=f"no file for band {b}"))
        if not lacking:
            out.append((galaxy, {b: resolved[b] for b in needed}))
    return out, rows


# ---------------------------------------------------------------------- output validation
def _input_checksums(files, needed):
    from .models.zoo import sha256_file

    if isinstance(files, str):
        digest = sha256_file(files)
        return {b: digest for b in needed}
    return {b: sha256_file(files[b]) for b in needed}


def _output_problem(path, *, name, sha256, band, files, needed):
    """Why the existing file ``path`` is not this model's output for these inputs, or None."""
    from astropy.io import fits

    try:
        with fits.open(path, memmap=False, lazy_load_hdus=False) as hdul:
            for hdu in hdul:
                if hdu.verify_checksum() != 1 or hdu.verify_datasum() != 1:
                    return f"fails its CHECKSUM/DATASUM check (HDU {hdu.name or '#'}): it is corrupt or was modified"
            header = hdul[0].header
            if hdul[0].data is None:
                return "has no image"
            made = (str(header.get("BSMODEL", "")), str(header.get("BSSHA256", "")), str(header.get("BSBAND", "")))
            prov = json.loads(header.get("BSPROV", "{}"))
    except Exception as err:  # anything unreadable is "not valid", whatever astropy raised
        return f"cannot be read as a bandsynth output ({type(err).__name__}: {err})"
    if made != (name, sha256, band):
        return (
            f"was made by model {made[0]!r} (weights SHA-256 {made[1][:12] or 'none'}) for band {made[2]!r}, "
            f"not by model {name!r} (weights SHA-256 {sha256[:12] or 'none'}) for band {band!r}"
        )
    try:
        current = _input_checksums(files, needed)
    except OSError as err:
        return f"cannot be checked against its inputs ({err})"
    recorded = {i.get("band"): i.get("checksum") for i in prov.get("inputs", ()) if isinstance(i, dict)}
    changed = [b for b in needed if recorded.get(b) != current[b]]
    if changed:
        return f"was made from other input files (checksum of band(s) {', '.join(changed)} differs)"
    return None


def _remove_stale_temporaries(path):
    """Remove temporary files a killed run left next to ``path`` (atomic writes use ``.NAME.*.tmp``)."""
    pattern = os.path.join(glob.escape(os.path.dirname(path)), f".{glob.escape(os.path.basename(path))}.*.tmp")
    for tmp in glob.glob(pattern):
        try:
            os.remove(tmp)
            log.info("removed %s, left by an interrupted run", tmp)
        except OSError:
            pass


# ---------------------------------------------------------------------- the model on workers
_CACHE = {}
_CACHE_SIZE = 4
_CACHE_LOCK = threading.Lock()
# One galaxy at a time per process: astropy and bandsynth use warnings.catch_warnings,
# which is not thread-safe before Python 3.14, so worker threads would corrupt each
# other's warning filters.
_GALAXY_LOCK = threading.Lock()


def _get_translator(model, payload=None):
    """The translator of ``model = (source, sha256)``, loaded once per worker process."""
    from .models.zoo import WeightsHashError
    from .translator import Translator

    source, sha256 = model
    with _CACHE_LOCK:
        translator = _CACHE.get((source, sha256))
        if translator is None:
            if payload is not None:
                # A model that exists only in the client's memory: its saved files travel
                # with the tasks and are loaded through the same hash-checked path.
                folder = tempfile.mkdtemp(prefix="bandsynth-model-")
                try:
                    weights, card = payload
                    Path(folder, "model.safetensors").write_bytes(weights)
                    Path(folder, "model.json").write_text(card)
                    translator = Translator.load(Path(folder, "model"))
                finally:
                    shutil.rmtree(folder, ignore_errors=True)
            else:
                translator = Translator.load(source)
            if translator.card.sha256 != sha256:
                raise WeightsHashError(
                    f"model {source!r} here has weights SHA-256 {translator.card.sha256}, but the batch "
                    f"started with {sha256}: the model changed during the batch"
                )
            while len(_CACHE) >= _CACHE_SIZE:  # a long-lived cluster serving many models
                _CACHE.pop(next(iter(_CACHE)))
            _CACHE[(source, sha256)] = translator
    return translator


_MALLOC_TUNED = False


def _tune_malloc():
    """Undo the slow-down of the network under Dask's nanny (once per process, glibc only).

    The nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which also switches
    off glibc's dynamic mmap threshold: every large temporary tensor is then mmap-ed,
    page-faulted and unmapped afresh, which doubles the time of the "paper" network
    (measured: 0.50 s instead of 0.19 s for a 128 x 128 image).  The usual thresholds
    are restored with ``mallopt``.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return
    _MALLOC_TUNED = True
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ or not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)  # glibc's largest dynamic value
        libc.mallopt(_M_TRIM_THRESHOLD, 128 << 20)
    except (OSError, AttributeError):  # not glibc
        pass


def _cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _set_torch_threads(options):
    import torch

    n = options.get("torch_threads")
    if n is None and options.get("host_workers"):
        from distributed import get_worker
        from distributed.comm import get_address_host

        try:
            host = get_address_host(get_worker().address)
        except ValueError:  # not running on a distributed worker
            return
        n = max(1, _cores() // max(1, options["host_workers"].get(host, 1)))
    if n is not None and torch.get_num_threads() != n:
        torch.set_num_threads(n)


def _attribute(err, files):
    """(band, file) an input error is about.

    From the error's ``band`` and ``path`` attributes where it carries them; only
    errors that do not are attributed from their message (``band 'X'``).
    """
    band, path = getattr(err, "band", None), getattr(err, "path", None)
    if band is not None or path is not None:
        from .bands import get_band

        if band is not None:
            try:
                band = get_band(getattr(band, "name", band)).name
            except ValueError:
                band = str(band)
        if path is None:
            path = files if isinstance(files, str) else files.get(band, ", ".join(files.values()))
        if band is None:
            band = "" if isinstance(files, str) else next(
                (b for b, f in files.items() if os.fspath(f) == os.fspath(path)), ",".join(files))
        return str(band), os.fspath(path)
    if isinstance(files, str):
        match = _BAND_IN_MESSAGE.search(str(err))
        return (match.group(1) if match else ""), files
    match = _BAND_IN_MESSAGE.search(str(err))
    if match:
        from .bands import get_band

        try:
            band = get_band(match.group(1)).name
        except ValueError:
            band = None
        if band in files:
            return band, files[band]
    return ",".join(files), ", ".join(files.values())


def _message(err):
    text = str(err)
    if isinstance(err, MemoryError):
        return f"out of memory{': ' + text if text else ''}"
    return text or type(err).__name__


def _predict_galaxy(galaxy, files, out, *, model, options, payload=None):
    """Predict one galaxy into ``out``; never raises: returns its report row.

    Warnings raised on the way are not printed by the worker (its stderr would mix
    them with the progress bar): they travel with the row (``_warnings``) and the
    caller logs each once.
    """
    import warnings

    with _GALAXY_LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        row = _predict_galaxy_locked(galaxy, files, out, model=model, options=options, payload=payload)
    messages = []
    for w in caught:
        text = str(w.message)
        if w.category.__name__ not in ("UserWarning", "AstropyUserWarning"):
            text = f"{w.category.__name__}: {text}"
        if text not in messages:
            messages.append(text)
    if messages:
        row["_warnings"] = messages
    return row


def _predict_galaxy_locked(galaxy, files, out, *, model, options, payload):
    started = time.perf_counter()
    try:
        _tune_malloc()
        _set_torch_threads(options)
        translator = _get_translator(model, payload)
    except Exception as err:
        return _row(galaxy, "failed", output=out, error=f"cannot load the model: {_message(err)}")
    band = translator.output
    needed = translator.inputs
    overwrite = bool(options.get("overwrite"))

    def failed(error, *, band=band, file=out):
        return _row(galaxy, "failed", band=band, file=file, output=out, error=error,
                    seconds=time.perf_counter() - started)

    _remove_stale_temporaries(out)
    exists = os.path.lexists(out)
    if exists:
        problem = _output_problem(out, name=translator.name, sha256=translator.card.sha256, band=band,
                                  files=files, needed=needed)
        if problem is None and not overwrite:
            return _row(galaxy, "exists", band=band, output=out, seconds=time.perf_counter() - started)
        if problem is not None and not overwrite:
            return failed(f"output {out} exists but {problem}; it is kept: pass --overwrite (overwrite=True) "
                          "to predict it again")
    from .stack import BandStack

    try:
        stack = BandStack.from_fits(files, reproject_to=options.get("reproject_to"))
    except Exception as err:
        b, f = _attribute(err, files)
        return failed(_message(err), band=b, file=f)
    try:
        prediction = translator.predict(stack, **options.get("predict_kw", {}))
    except Exception as err:
        b, f = _attribute(err, files)
        return failed(_message(err), band=b, file=f)
    try:
        prediction.write(out, overwrite=overwrite and exists)
    except Exception as err:
        return failed(f"cannot write {out}: {_message(err)}")
    return _row(galaxy, "done", band=band, output=out, seconds=time.perf_counter() - started)


# ---------------------------------------------------------------------- running
def _resolve_model(model):
    """``(translator, (source, sha256), payload)`` for a model name, path or Translator."""
    from .models.zoo import WEIGHTS_DIR, model_paths
    from .translator import Translator

    if isinstance(model, Translator):
        return model, None, None
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"model must be a model name, a path or a Translator, got {type(model).__name__}")
    text = os.fspath(model)
    weights, _ = model_paths(text)
    translator = Translator.load(text)
    # Shipped models are named (each worker finds its own copy); others go by absolute path.
    source = text if weights.parent.resolve() == WEIGHTS_DIR.resolve() else str(weights.resolve().with_suffix(""))
    return translator, (source, translator.card.sha256), None


def _payload(translator):
    """The translator's saved files, to send to workers that cannot see it."""
    with tempfile.TemporaryDirectory(prefix="bandsynth-model-") as folder:
        saved = translator.save(Path(folder, "model"))
        weights = Path(folder, "model.safetensors").read_bytes()
        card = Path(folder, "model.json").read_text()
    return saved, (saved.name, saved.card.sha256), (weights, card)


def _progress_bar(total, enabled):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, unit="galaxy", desc="predict-batch", dynamic_ncols=True)


def _log_row(row):
    for text in row.pop("_warnings", ()):
        log.warning("galaxy %s: %s", row["galaxy"], text)
    if row["status"] == "failed":
        where = f" [{row['band']}: {row['file']}]" if row["file"] and row["file"] != row["output"] else ""
        log.warning("galaxy %s failed%s: %s", row["galaxy"], where, row["error"])
    else:
        log.debug("galaxy %s: %s (%.2f s)", row["galaxy"], row["status"], row["seconds"])


def _run_local(jobs, ref, payload, *, workers, torch_threads, options, progress):
    """Run on a `distributed.LocalCluster` of ``workers`` single-threaded processes."""
    import dask
    from distributed import Client, LocalCluster

    # A galaxy that kills its worker (e.g. out of memory) is retried once on a fresh
    # process, then reported, rather than tried three times.
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        # No dashboard; the scheduler's small HTTP server (health checks) on any free port.
        # silence_logs: the scheduler's and workers' INFO chatter is not for the user.
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None, scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                               silence_logs=logging.ERROR)
    try:
        client = Client(cluster, set_as_default=False)
        try:
            return _run_distributed(jobs, ref, payload, scheduler=client, torch_threads=torch_threads,
                                    options=options, progress=progress)
        finally:
            _quiet_close(client)
    finally:
        _quiet_close(cluster)


def _quiet_close(thing):
    """Close a Dask client or cluster; the results are in, so a connection torn down
    while closing (``CommClosedError``) is not an error of the batch."""
    from distributed.comm.core import CommClosedError

    noisy = [logging.getLogger(name) for name in ("distributed", "tornado", "asyncio")]
    levels = [logger.level for logger in noisy]
    for logger in noisy:
        logger.setLevel(logging.CRITICAL)
    try:
        thing.close()
    except (CommClosedError, OSError, TimeoutError) as err:
        log.debug("ignored while shutting Dask down: %r", err)
    finally:
        for logger, level in zip(noisy, levels):
            logger.setLevel(level)


def _cluster_workers(client):
    try:
        info = client.scheduler_info(n_workers=-1)  # every worker, not the first few
    except TypeError:  # distributed < 2025 lists them all anyway
        info = client.scheduler_info()
    return info.get("workers", {})


def _run_distributed(jobs, ref, payload, *, scheduler, torch_threads, options, progress):
    from distributed import Client, as_completed
    from distributed.comm import get_address_host

    own = not isinstance(scheduler, Client)
    client = Client(scheduler, set_as_default=False) if own else scheduler
    futures = {}
    try:
        workers = _cluster_workers(client)
        if not workers:
            client.wait_for_workers(1, timeout=60)
            workers = _cluster_workers(client)
        # Worker processes per machine: each runs one galaxy at a time (see _GALAXY_LOCK)
        # and gives the network its share of the machine's cores.
        host_workers = {}
        for addr in workers:
            host = get_address_host(addr)
            host_workers[host] = host_workers.get(host, 0) + 1
        options = {**options, "torch_threads": torch_threads, "host_workers": host_workers}
        extra = {}
        if payload is not None:
            extra["payload"] = client.scatter(payload, broadcast=True, hash=False)
        log.info("sending %d galaxies to %d worker(s) at %s", len(jobs), len(workers), client.scheduler.address)
        for i, (galaxy, files, out) in enumerate(jobs):
            future = client.submit(_predict_galaxy, galaxy, files, out, model=ref, options=options, pure=False,
                                   key=f"bandsynth-predict-{i}-{os.urandom(4).hex()}", **extra)
            futures[future] = i
        results = [None] * len(jobs)
        bar = _progress_bar(len(jobs), progress)
        try:
            for future in as_completed(list(futures), loop=client.loop):
                i = futures[future]
                try:
                    row = future.result()
                except Exception as err:  # the worker died or the task was lost
                    galaxy, _, out = jobs[i]
                    row = _row(galaxy, "failed", output=out, error=f"worker failure: {_message(err)}")
                results[i] = row
                _log_row(row)
                bar.update(1)
                future.release()
        finally:
            bar.close()
        return results
    finally:
        for future in futures:
            if not future.done():
                future.cancel()
        if own:
            _quiet_close(client)


def predict_many(
    model,
    items,
    *,
    out_dir,
    workers=None,
    scheduler=None,
    overwrite=False,
    progress=True,
    report=None,
    reproject_to=None,
    tta=False,
    torch_threads=None,
    predict_kw=None,
    base_dir=None,
) -> BatchReport:
    """Predict the model's output band for many galaxies, one FITS file each.

    Parameters
    ----------
    model : str, os.PathLike or `~bandsynth.Translator`
        A shipped model's name, the path of a saved model, or a translator.
    items : manifest path, `~astropy.table.Table`, `~bandsynth.datasets.folder.FolderScan` or list
        The galaxies: a manifest (see :func:`read_manifest`), the result of
        `~bandsynth.datasets.folder.scan_folder`, or a list of
        ``(id, {band: path})`` (or ``(id, multi-extension path)``) pairs.
    out_dir : str or os.PathLike
        Output folder (created if needed); galaxy ``id`` goes to
        ``out_dir/<id>_<band>_synth.fits`` (:func:`output_path`).
    workers : int, optional
        Local worker processes (default: the number of cores).  Ignored with ``scheduler``.
    scheduler : str or `distributed.Client`, optional
        Address of a ``dask.distributed`` scheduler (e.g. ``"tcp://10.0.0.1:8786"``)
        or a connected client: run on that cluster instead of locally.
    overwrite : bool
        Predict again and replace existing outputs.  Without it, a valid
        output of this model for the same inputs is kept (status ``"exists"``)
        and any other existing file is left alone and reported as a failure.
    progress : bool
        Show a progress bar.
    report : str or os.PathLike, optional
        Also write the report there (ECSV).
    reproject_to : str, optional
        Resample each galaxy's bands onto this band's grid before predicting.
    tta : bool
        Average over the 8 flips/rotations (see `Translator.predict`).
    torch_threads : int, optional
        Intra-op threads of each worker's network (default: the cores of its
        machine divided by the Dask worker threads there).
    predict_kw : mapping, optional
        Further `Translator.predict` options (``batch_size``, ``n_samples``,
        ``tile``, ``precision``...).
    base_dir : str or os.PathLike, optional
        Folder of relative paths in a Table manifest.

    Returns
    -------
    BatchReport
        One row per galaxy (and per unusable file of a folder scan).

    Raises
    ------
    ValueError, FileNotFoundError, TypeError
        A problem with the model (unknown name, weights failing their SHA-256
        check), the manifest or the options -- never a problem of one galaxy,
        which is reported instead.

    Examples
    --------
    The usual call is ``predict_many("nuv_k_to_r", "manifest.ecsv", out_dir="synth")``.
    Problems of single galaxies end up in the report:

    >>> import tempfile
    >>> report = predict_many("nuv_k_to_r", [("g1", {"NUV": "g1_nuv.fits"})], out_dir=tempfile.mkdtemp(),
    ...                       progress=False)
    >>> report
    <BatchReport: 1 galaxy: 0 predicted, 0 already done, 1 failed>
    >>> print(report.failed["error"][0])
    no file for band Ks
    """
    from .bands import get_band
    from .translator import Translator

    if not isinstance(out_dir, (str, os.PathLike)):
        raise TypeError(f"out_dir must be a path, got {type(out_dir).__name__}")
    if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool) or workers < 1):
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if torch_threads is not None and (not isinstance(torch_threads, int) or torch_threads < 1):
        raise ValueError(f"torch_threads must be a positive integer, got {torch_threads!r}")
    predict_kw = dict(predict_kw or {})
    if "tta" in predict_kw:
        raise TypeError("give tta= directly, not in predict_kw")
    import inspect

    try:
        inspect.signature(Translator.predict).bind(None, None, **predict_kw)
    except TypeError as err:
        raise TypeError(f"predict_kw: {err}") from None
    predict_kw["tta"] = bool(tta)

    translator, ref, payload = _resolve_model(model)
    if reproject_to is not None:
        reproject_to = get_band(reproject_to).name
        if reproject_to not in translator.inputs:
            raise ValueError(
                f"reproject_to={reproject_to!r} is not an input band of model {translator.name!r} "
                f"({', '.join(translator.inputs)})"
            )
    needed = translator.inputs
    item_list, rows = _normalise_items(items, needed, base_dir)

    out_dir = Path(out_dir).absolute()
    _check_writable(out_dir)
    jobs, seen = [], {}
    for galaxy, files in item_list:
        try:
            out = output_path(out_dir, galaxy, translator.output)
        except ValueError as err:
            file = files if isinstance(files, str) else ", ".join(files.values())
            rows.append(_row(galaxy, "failed", file=file, error=str(err)))
            continue
        if galaxy in seen:
            rows.append(_row(galaxy, "failed", output=out,
                             error=f"duplicate galaxy id: item {seen[galaxy] + 1} already writes {out}"))
            continue
        seen[galaxy] = len(jobs)
        jobs.append((galaxy, files, str(out)))
    for row in rows:
        _log_row(row)

    options = {"overwrite": bool(overwrite), "reproject_to": reproject_to, "predict_kw": predict_kw}
    started = time.perf_counter()
    if jobs and ref is None:
        translator, ref, payload = _payload(translator)
    if not jobs:
        results = []
    elif scheduler is None:
        results = _run_local(jobs, ref, payload, workers=min(workers or _cores(), len(jobs)),
                             torch_threads=torch_threads, options=options, progress=progress)
    else:
        if workers is not None:
            log.info("workers=%d is ignored: the cluster at %s has its own workers", workers, scheduler)
        results = _run_distributed(jobs, ref, payload, scheduler=scheduler, torch_threads=torch_threads,
                                   options=options, progress=progress)
    result = BatchReport([*results, *rows])
    c = result.counts
    summary = (f"{c['done']} predicted, {c['exists']} already done, {c['failed']} failed "
               f"in {time.perf_counter() - started:.1f} s; outputs in {out_dir}")
    if report is not None:
        result.write(report)
        summary += f"; report {report}"
    log.info("predict-batch: %s", summary)
    return result


def _check_writable(out_dir):
    """Create ``out_dir`` and make sure files can be written there, before any galaxy is predicted."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out_dir, prefix=".bandsynth-probe-")
        os.close(fd)
        os.remove(probe)
    except OSError as err:
        raise PermissionError(
            f"output folder {out_dir} cannot be written ({err.strerror or type(err).__name__}); nothing was predicted"
        ) from None
