"""What runs on a worker: the translator cache, threads, one galaxy's prediction, error attribution.

Part of `bandsynth.batch`; import the public names from there.
"""

from __future__ import annotations

import inspect
import logging
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from ..errors import HDU_HINT
from ..resample import describe_target
from .outputs import output_problem, recorded_warnings, remove_stale_temporaries
from .report import report_row

__all__ = ["TRANSLATOR_CACHE", "get_translator", "cores", "attribute_error", "error_message", "predict_galaxy",
           "quiet_dask_logs"]

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_BAND_IN_MESSAGE = re.compile(r"band '([^']+)'")

#: Loggers that report a Dask cluster's own shutdown (torn-down connections, heartbeats).
_DASK_LOGGERS = ("distributed", "tornado", "asyncio")


def quiet_dask_logs():
    """Raise the log levels of Dask's loggers in this process to CRITICAL.

    Called in the main process while a cluster closes, and in each worker process
    just before: a worker whose heartbeat meets a scheduler that has just closed logs
    an ERROR from its own process, out of reach of the main process's levels.

    Returns
    -------
    dict
        The previous level of each of those loggers, by name, to restore.

    Examples
    --------
    >>> import logging
    >>> from bandsynth.batch.workers import quiet_dask_logs
    >>> levels = quiet_dask_logs()
    >>> logging.getLogger("distributed.worker").isEnabledFor(logging.ERROR)
    False
    >>> for name, level in levels.items():
    ...     logging.getLogger(name).setLevel(level)
    """
    # Dask's logging configuration may set levels on child loggers (distributed.worker, ...)
    # that would otherwise keep their own level.
    names = [name for name in logging.root.manager.loggerDict
             if name.split(".")[0] in _DASK_LOGGERS] + list(_DASK_LOGGERS)
    levels = {}
    for name in dict.fromkeys(names):
        logger = logging.getLogger(name)
        levels[name] = logger.level
        logger.setLevel(logging.CRITICAL)
    return levels


# ---------------------------------------------------------------------- the model on workers
#: Translators loaded in this process, by ``(source, sha256, card_sha256)`` (at most four).
TRANSLATOR_CACHE = {}
_CACHE_SIZE = 4
_CACHE_LOCK = threading.Lock()
# One galaxy at a time per process: astropy and bandsynth use warnings.catch_warnings,
# which is not thread-safe before Python 3.14, so worker threads would corrupt each
# other's warning filters.
_GALAXY_LOCK = threading.Lock()


def get_translator(model, payload=None):
    """The translator of ``model = (source, sha256, card_sha256)``, loaded once per worker process.

    Loaded translators are kept in :data:`TRANSLATOR_CACHE` (the oldest is
    dropped beyond four).

    Parameters
    ----------
    model : (str, str, str)
        ``(source, sha256, card_sha256)``: a shipped model's name or a saved model's
        path, and the SHA-256 of its weights and of its card when the batch started (a
        model recalibrated since is another model: its card's hash keys the cache).
    payload : (bytes, str), optional
        The weights (safetensors bytes) and card (JSON text) of a model that
        exists only in the client's memory; loaded instead of ``source``.

    Returns
    -------
    `~bandsynth.Translator`
        The loaded translator.

    Raises
    ------
    bandsynth.models.zoo.WeightsHashError
        The weights found here differ from ``sha256`` (the model changed
        during the batch).
    """
    from ..models.zoo import WeightsHashError
    from ..translator import Translator

    source, sha256, card_sha256 = model
    with _CACHE_LOCK:
        translator = TRANSLATOR_CACHE.get(model)
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
            if (translator.card.sha256, translator.card.card_sha256) != (sha256, card_sha256):
                raise WeightsHashError(
                    f"model {source!r} here has weights SHA-256 {translator.card.sha256} and card SHA-256 "
                    f"{translator.card.card_sha256}, but the batch started with {sha256} and {card_sha256}: the "
                    "model changed during the batch"
                )
            while len(TRANSLATOR_CACHE) >= _CACHE_SIZE:  # a long-lived cluster serving many models
                TRANSLATOR_CACHE.pop(next(iter(TRANSLATOR_CACHE)))
            TRANSLATOR_CACHE[model] = translator
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


def cores():
    """Cores this process may run on.

    Returns
    -------
    int
        The size of the process's CPU affinity set where the platform has one,
        else `os.cpu_count` (at least 1).
    """
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
        n = max(1, cores() // max(1, options["host_workers"].get(host, 1)))
    if n is not None and torch.get_num_threads() != n:
        torch.set_num_threads(n)


def attribute_error(err, files):
    """(band, file) an input error is about.

    From the error's ``band`` and ``path`` attributes where it carries them; only
    errors that do not are attributed from their message (``band 'X'``).

    Parameters
    ----------
    err : Exception
        The error raised while reading or predicting the galaxy.
    files : dict or str
        The galaxy's inputs: ``{band: path}`` or one multi-extension path.

    Returns
    -------
    band : str
        Canonical name of the band at fault; ``""`` when unknown for a
        multi-extension file, or all bands joined by commas when it cannot be
        told.
    file : str
        The file at fault (all files joined by ``", "`` when it cannot be told).
    """
    band, path = getattr(err, "band", None), getattr(err, "path", None)
    if band is not None or path is not None:
        from ..bands import get_band

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
        from ..bands import get_band

        try:
            band = get_band(match.group(1)).name
        except ValueError:
            band = None
        if band in files:
            return band, files[band]
    return ",".join(files), ", ".join(files.values())


def error_message(err):
    """The text of ``err`` for the report (its type when it has none; memory errors say so).

    Parameters
    ----------
    err : BaseException
        The error.

    Returns
    -------
    str
        ``str(err)``, or the name of its type when that is empty; a
        `MemoryError` starts with ``"out of memory"``.
    """
    text = str(err)
    if isinstance(err, MemoryError):
        return f"out of memory{': ' + text if text else ''}"
    return text or type(err).__name__


def predict_galaxy(galaxy, files, out, *, model, options, payload=None):
    """Predict one galaxy into ``out``; never raises: returns its report row.

    Warnings raised on the way are not printed by the worker (its stderr would mix
    them with the progress bar): they travel with the row (``_warnings``) and the
    caller logs each once.  One galaxy runs at a time per process.

    Parameters
    ----------
    galaxy : str
        Galaxy id.
    files : dict or str
        Its inputs: ``{band: path}`` or one multi-extension path.
    out : str
        Output path.
    model : (str, str, str)
        ``(source, weights SHA-256, card SHA-256)`` of the model (see :func:`get_translator`).
    options : dict
        ``overwrite`` (bool), ``reproject_to`` (band name, pixel scale or None), ``request``
        (``(inputs, band)`` of an any-band model, or None),
        ``predict_kw`` (keyword arguments of `Translator.predict
        <bandsynth.Translator.predict>`), ``torch_threads`` (int or None) and
        ``host_workers`` (worker processes per host, used to share the cores
        when ``torch_threads`` is None).
    payload : (bytes, str), optional
        Weights and card of a model that exists only in the client's memory.

    Returns
    -------
    dict
        The galaxy's report row (:func:`~bandsynth.batch.report.report_row`):
        status ``"done"``, ``"exists"`` (a valid earlier output was kept) or
        ``"failed"``, plus ``_warnings`` (list of str) when warnings were raised.
    """
    import warnings

    with _GALAXY_LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        row = _predict_galaxy_locked(galaxy, files, out, model=model, options=options, payload=payload)
    messages = []
    for w in caught:
        text = _batch_words(str(w.message))
        if w.category.__name__ not in ("UserWarning", "AstropyUserWarning"):
            text = f"{w.category.__name__}: {text}"
        if text not in messages:
            messages.append(text)
    if messages:
        row["_warnings"] = messages
    return row


def _paths_and_hdus(files):
    """A galaxy's inputs as files and ``{band: HDU}`` of those named ``FILE[EXT]`` (one HDU of a file)."""
    from .._io import split_extended_name

    if isinstance(files, str):
        return files, {}
    split = {b: split_extended_name(f) for b, f in files.items()}
    return {b: p for b, (p, _) in split.items()}, {b: h for b, (_, h) in split.items() if h is not None}


# The reader's hints name Python arguments (HDU_HINT); a batch names its files as text, where FILE[EXT] picks an HDU.
_STACK_HINT = "(BandStack.from_fits(path))"


# Reading errors advise Python calls a batch has no use for; a batch takes its options (both interfaces'
# names) and each file's own unit and zero point.
_BATCH_WORDS = (
    (re.compile(r"BandStack\.from_fits\(\.\.\., reproject_to=('[^']*')\), BandStack\.from_arrays\(\.\.\., "
                r"reproject_to='[^']*'\) or BandStack\.reproject|reproject_to=('[^']*') in BandStack\.from_fits / "
                r"BandStack\.from_arrays, or BandStack\.reproject"),
     lambda m: f"--reproject-to {(m.group(1) or m.group(2))[1:-1]} (reproject_to={m.group(1) or m.group(2)})"),
    (re.compile(r"(?: and no unit= was given)?; pass unit= \(e\.g\. unit='([^']*)'\)(, or for counts zeropoint=)?"),
     lambda m: f"; give the file a BUNIT keyword (e.g. BUNIT = '{m.group(1)}'"
               + (", or for counts BUNIT = 'adu' with a zero point such as PHOTZP" if m.group(2) else "")
               + "): a batch reads each file's own unit"),
    (re.compile(r"pass zeropoint= \(([^)]*)\)"),
     lambda m: f"give its header a zero point, e.g. PHOTZP = {m.group(1)} (a batch reads each file's own)"),
    # the domain check's advice (a warning, in the report as in the log)
    (re.compile(r"(?<!\()reproject_to=([0-9.e+-]+) \* u\.arcsec"),
     lambda m: f"--reproject-to {m.group(1)} (reproject_to={m.group(1)} * u.arcsec)"),
    (re.compile(r"(?<!\()reproject_to=('[^']*')"),
     lambda m: f"--reproject-to {m.group(1)[1:-1]} (reproject_to={m.group(1)})"),
)


def _batch_words(text):
    """A message's Python advice in a batch's words (both interfaces' names)."""
    for pattern, words in _BATCH_WORDS:
        text = pattern.sub(words, text)
    return text


def _batch_hints(text, files):
    """A reading error's hints in the words of a batch's inputs."""
    def named(match):
        band, hdu = match.groups()
        path = files.get(band) if isinstance(files, dict) else None
        return f"give its file as '{path or 'FILE'}[{hdu}]'"
    text = _batch_words(HDU_HINT.sub(named, text))
    return text.replace(_STACK_HINT, "(give it alone, as the galaxy's one multi-extension file)")


def _predict_options(translator, predict_kw):
    """The `~bandsynth.Translator.predict` options an output records, as this run gives them (defaults filled in),
    and whether this run restores the noise of inputs resampled by a sub-pixel shift (for its model)."""
    from ..models.domain import restores_noise

    parameters = inspect.signature(type(translator).predict).parameters
    options = {k: predict_kw.get(k, parameters[k].default) for k in ("uncertainty", "tta", "n_samples", "seed")}
    restore = predict_kw.get("restore_noise", parameters["restore_noise"].default)
    return {**options, "restore_noise": restores_noise(translator.card, restore)}


def _predict_galaxy_locked(galaxy, files, out, *, model, options, payload):
    started = time.perf_counter()
    try:
        _tune_malloc()
        _set_torch_threads(options)
        translator = any_band = get_translator(model, payload)
        if options.get("request"):  # one request of an any-band model
            inputs, band = options["request"]
            translator = translator.task(inputs=inputs, output=band)
    except Exception as err:
        return report_row(galaxy, "failed", output=out, error=f"cannot load the model: {error_message(err)}")
    band = translator.output
    needed = translator.inputs
    overwrite = bool(options.get("overwrite"))

    def failed(error, *, band=band, file=out):
        return report_row(galaxy, "failed", band=band, file=file, output=out, error=error,
                          seconds=time.perf_counter() - started)

    paths, hdus = _paths_and_hdus(files)
    remove_stale_temporaries(out)
    exists = os.path.lexists(out)
    if exists:
        target = options.get("reproject_to")
        problem = output_problem(out, name=translator.name, sha256=translator.card.sha256, band=band,
                                  card_sha256=translator.card.prediction_sha256,
                                  files=paths, needed=needed, hdus=hdus,
                                  options=_predict_options(translator, options.get("predict_kw", {})),
                                  reproject_to=None if target is None else describe_target(target))
        if problem is None and not overwrite:  # with the warnings of the run that made it, which it records
            kept_warnings = " | ".join(map(_batch_words, recorded_warnings(out)))
            return report_row(galaxy, "exists", band=band, output=out, warnings=kept_warnings,
                              seconds=time.perf_counter() - started)
        if problem is not None and not overwrite:
            return failed(f"output {out} exists but {problem}; it is kept: pass --overwrite (overwrite=True) "
                          "to predict it again")
    from ..stack import BandStack
    from ..stack_io import file_bands

    try:
        extnames = None
        if isinstance(paths, str):  # one multi-extension file: only the model's bands are read, if it has them all
            held = file_bands(paths)  # (if not, reading it all says what is wrong with it)
            if all(b in held for b in needed):
                extnames = {held[b]: b for b in needed}
        stack = BandStack.from_fits(paths, hdu=hdus or None, extnames=extnames,
                                    reproject_to=options.get("reproject_to"))
    except Exception as err:
        b, f = attribute_error(err, paths)
        return failed(_batch_hints(error_message(err), files), band=b, file=files.get(b, f) if hdus else f)
    try:
        if options.get("request"):  # told this galaxy's input PSFs and noise, if the network reads them
            translator = any_band.request(stack, band, inputs=translator.inputs)
        prediction = translator.predict(stack, **options.get("predict_kw", {}))
    except Exception as err:
        b, f = attribute_error(err, files)
        return failed(error_message(err), band=b, file=f)
    try:
        prediction.write(out, overwrite=overwrite and exists)
    except Exception as err:
        return failed(f"cannot write {out}: {error_message(err)}")
    return report_row(galaxy, "done", band=band, output=out, seconds=time.perf_counter() - started)
