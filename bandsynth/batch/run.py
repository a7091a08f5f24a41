"""Running a batch: the model, local and distributed Dask runs, :func:`predict_many`.

Part of `bandsynth.batch`; import the public names from there.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import tempfile
import threading
import time
from pathlib import Path

from .manifest import normalise_items
from .outputs import check_writable, output_path
from .report import BatchReport, check_report_path, report_row
from .workers import cores, error_message, predict_galaxy, quiet_dask_logs

__all__ = ["predict_many", "run_local", "quiet_close"]

log = logging.getLogger("bandsynth.batch")
# The predict options of predict_kw checked before any work (`bandsynth.prediction.check_predict_options`).
_CHECKED_OPTIONS = ("uncertainty", "check_domain", "restore_noise", "n_samples", "batch_size", "tile", "seed")


def _resolve_model(model):
    """``(translator, (source, sha256, card_sha256), payload)`` for a model name, path or Translator."""
    from ..any_band_translator import AnyBandTranslator
    from ..models.zoo import WEIGHTS_DIR, model_paths
    from ..translator import Translator

    if isinstance(model, (Translator, AnyBandTranslator)):
        return model, None, None
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"model must be a model name, a path or a Translator, got {type(model).__name__}")
    text = os.fspath(model)
    weights, _ = model_paths(text)
    translator = Translator.load(text)
    # Shipped models are named (each worker finds its own copy); others go by absolute path.
    source = text if weights.parent.resolve() == WEIGHTS_DIR.resolve() else str(weights.resolve().with_suffix(""))
    return translator, (source, translator.card.sha256, translator.card.card_sha256), None


def _payload(translator):
    """The translator's saved files, to send to workers that cannot see it."""
    with tempfile.TemporaryDirectory(prefix="bandsynth-model-") as folder:
        saved = translator.save(Path(folder, "model"))
        weights = Path(folder, "model.safetensors").read_bytes()
        card = Path(folder, "model.json").read_text()
    return saved, (saved.name, saved.card.sha256, saved.card.card_sha256), (weights, card)


def _progress_bar(total, enabled):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, unit="galaxy", desc="predict-batch", dynamic_ncols=True)


def _report_warnings(row):
    """Move the worker's warnings (``_warnings``) into the row's report column; return them."""
    messages = row.pop("_warnings", ())
    if messages:
        row["warnings"] = " | ".join(messages)
    return messages


def _log_row(row):
    for text in _report_warnings(row):
        log.warning("galaxy %s: %s", row["galaxy"], text)
    if row["status"] == "failed":
        at = f"{row['band']}: {row['file']}" if row["band"] else row["file"]  # a file of several bands: no band
        where = f" [{at}]" if row["file"] and row["file"] != row["output"] else ""
        log.warning("galaxy %s failed%s: %s", row["galaxy"], where, row["error"])
    else:
        log.debug("galaxy %s: %s (%.2f s)", row["galaxy"], row["status"], row["seconds"])


def run_local(jobs, ref, payload, *, workers, torch_threads, options, progress, results=None):
    """Run on a `distributed.LocalCluster` of ``workers`` single-threaded processes.

    The cluster (no dashboard, quiet logs) is started for this call and shut
    down afterwards; a galaxy whose worker dies is retried once.

    Parameters
    ----------
    jobs : list of (str, dict or str, str)
        ``(galaxy id, files, output path)`` of each galaxy to predict.
    ref : (str, str)
        ``(source, weights SHA-256)`` of the model each worker loads (see
        :func:`~bandsynth.batch.workers.get_translator`).
    payload : (bytes, str) or None
        The saved weights and card of a model that exists only in memory, sent
        to every worker; None when workers load ``ref`` themselves.
    workers : int
        Number of worker processes.
    torch_threads : int or None
        Network threads per worker (None: the machine's cores divided among
        its workers).
    options : dict
        Prediction options passed to
        :func:`~bandsynth.batch.workers.predict_galaxy` (``overwrite``,
        ``reproject_to``, ``predict_kw``).
    progress : bool
        Show a progress bar.
    results : list, optional
        ``len(jobs)`` slots filled with each job's row as it finishes: what an interrupted
        run has done.

    Returns
    -------
    list of dict
        One report row per job, in the order of ``jobs``.
    """
    import dask
    from distributed import Client, LocalCluster

    # A galaxy that kills its worker (e.g. out of memory) is retried once on a fresh
    # process, then reported, rather than tried three times.
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}), _interrupts_left_to_this_process():
        # No dashboard; the scheduler's small HTTP server (health checks) on any free port.
        # silence_logs: the scheduler's and workers' INFO chatter is not for the user.
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None, scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                               silence_logs=logging.ERROR)
    try:
        client = Client(cluster, set_as_default=False)
        try:
            return _run_distributed(jobs, ref, payload, scheduler=client, torch_threads=torch_threads,
                                    options=options, progress=progress, results=results)
        finally:
            _quiet_workers(client)
            quiet_close(client)
    finally:
        quiet_close(cluster)


@contextlib.contextmanager
def _interrupts_left_to_this_process():
    """Start worker processes that leave Ctrl-C to this one, which stops them itself.

    A terminal's Ctrl-C reaches every process of its foreground group, and each worker
    printed a KeyboardInterrupt traceback of some 30 lines beside this process's report.
    A signal ignored when a process starts stays ignored in it and in the processes it
    starts (Python then installs no KeyboardInterrupt handler), so SIGINT is ignored while
    the cluster starts.  A Ctrl-C in those one or two seconds is lost; afterwards it stops
    the run as before.
    """
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _quiet_workers(client):
    """Quiet Dask's logs in the cluster's worker processes before it closes (see `quiet_dask_logs`)."""
    try:
        client.run(quiet_dask_logs)
    except Exception as err:  # a worker already gone has nothing left to log
        log.debug("could not quiet the workers' logs: %r", err)


def quiet_close(thing):
    """Close a Dask client or cluster; the results are in, so a connection torn down
    while closing (``CommClosedError``) is not an error of the batch.

    The log levels of ``distributed``, ``tornado`` and ``asyncio`` are raised to
    CRITICAL while closing and restored afterwards; other errors propagate.

    Parameters
    ----------
    thing : `distributed.Client` or `distributed.LocalCluster`
        Anything with a ``close()`` method.
    """
    from distributed.comm.core import CommClosedError

    levels = quiet_dask_logs()
    try:
        thing.close()
    except (CommClosedError, OSError, TimeoutError) as err:
        log.debug("ignored while shutting Dask down: %r", err)
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def _cluster_workers(client):
    try:
        info = client.scheduler_info(n_workers=-1)  # every worker, not the first few
    except TypeError:  # distributed < 2025 lists them all anyway
        info = client.scheduler_info()
    return info.get("workers", {})


def _run_distributed(jobs, ref, payload, *, scheduler, torch_threads, options, progress, results=None):
    from distributed import Client, as_completed
    from distributed.comm import get_address_host

    own = not isinstance(scheduler, Client)
    try:
        client = Client(scheduler, set_as_default=False) if own else scheduler
    except OSError as err:  # nobody there: said in the words of the option
        raise ValueError(f"scheduler={scheduler!r}: {err}") from None
    futures = {}
    try:
        workers = _cluster_workers(client)
        if not workers:
            client.wait_for_workers(1, timeout=60)
            workers = _cluster_workers(client)
        # Worker processes per machine: each runs one galaxy at a time (see workers._GALAXY_LOCK)
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
            future = client.submit(predict_galaxy, galaxy, files, out, model=ref, options=options, pure=False,
                                   key=f"bandsynth-predict-{i}-{os.urandom(4).hex()}", **extra)
            futures[future] = i
        results = [None] * len(jobs) if results is None else results
        bar = _progress_bar(len(jobs), progress)
        try:
            for future in as_completed(list(futures), loop=client.loop):
                i = futures[future]
                try:
                    row = future.result()
                except Exception as err:  # the worker died or the task was lost
                    galaxy, _, out = jobs[i]
                    row = report_row(galaxy, "failed", output=out, error=f"worker failure: {error_message(err)}")
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
            quiet_close(client)


#: Said of a manifest lacking bands an any-band model reads when no ``inputs=`` names those at hand.
_NAME_FEWER_BANDS = "; or, to predict from the bands it gives, name them: inputs=[...]"


def predict_many(model, items, *, out_dir, band=None, inputs=None, workers=None, scheduler=None, overwrite=False,
                 progress=True, report=None, reproject_to=None, tta=False, torch_threads=None, predict_kw=None,
                 base_dir=None) -> BatchReport:
    """Predict the model's output band for many galaxies, one FITS file each.

    Parameters
    ----------
    model : str, os.PathLike, `~bandsynth.Translator` or `~bandsynth.any_band_translator.AnyBandTranslator`
        A shipped model's name, the path of a saved model, or a translator.
    items : manifest path, `~astropy.table.Table`, `~bandsynth.datasets.folder.FolderScan` or list
        The galaxies: a manifest (see :func:`read_manifest`), the result of
        `~bandsynth.datasets.folder.scan_folder`, or a list of
        ``(id, {band: path})`` (or ``(id, multi-extension path)``) pairs.
    out_dir : str or os.PathLike
        Output folder (created if needed); galaxy ``id`` goes to
        ``out_dir/<id>_<band>_synth.fits`` (:func:`output_path`).
    band : str, optional
        The band to predict: required for an any-band model; else the model's output.
    inputs : sequence of str, optional
        For an any-band model, the bands every galaxy gives (default: all it reads but ``band``).
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
        Also write the report there (ECSV, or CSV for a ``.csv`` name); a run interrupted (Ctrl-C) writes it before it
        stops, the galaxies not yet predicted as failed.  An existing file there must be an
        earlier report (`bandsynth.batch.report.check_report_path`).
    reproject_to : str or `~astropy.units.Quantity`, optional
        Resample each galaxy's bands onto this band's grid before predicting, or onto
        pixels of this angle over the bluest band's field (e.g. the model's pixel scale).
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
    ValueError, FileNotFoundError, FileExistsError, TypeError
        A problem with the model (unknown name, weights failing their SHA-256
        check), the manifest, the report's path or the options -- never a problem
        of one galaxy, which is reported instead.

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
    predict_kw, report = _check_options(out_dir, workers, torch_threads, predict_kw, tta, scheduler, report)
    translator, ref, payload = _resolve_model(model)
    request = _with_checked_values(_request(translator, band, inputs), predict_kw)
    reproject_to = _check_reproject_to(reproject_to, request)
    fewer = "" if request is translator or inputs is not None else _NAME_FEWER_BANDS
    item_list, rows = normalise_items(items, request.inputs, base_dir, fewer_bands_hint=fewer)

    out_dir = Path(out_dir).absolute()
    check_writable(out_dir)
    jobs = _plan_jobs(item_list, rows, out_dir, request.output)
    for row in rows:
        _log_row(row)

    options = {"overwrite": bool(overwrite), "reproject_to": reproject_to, "predict_kw": predict_kw,
               "request": None if request is translator else (request.inputs, request.output)}
    started = time.perf_counter()
    if jobs and ref is None:
        translator, ref, payload = _payload(translator)
    results = [None] * len(jobs)
    try:
        results = _run(jobs, ref, payload, scheduler=scheduler, workers=workers, torch_threads=torch_threads,
                       options=options, progress=progress, results=results)
    except KeyboardInterrupt:
        _interrupted(jobs, results, rows, report=report)
        raise
    return _finish(BatchReport([*results, *rows]), started=started, out_dir=out_dir, report=report)


def _check_options(out_dir, workers, torch_threads, predict_kw, tta, scheduler, report):
    """The options of :func:`predict_many` checked before any work: ``predict_kw`` with ``tta``, and the report's
    path (never the manifest or a prediction)."""
    from ..prediction import check_predict_options
    from ..translator import Translator

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
    try:  # a bad value would fail every galaxy, one by one: refused before any work, named
        check_predict_options(tta=tta, **{k: v for k, v in predict_kw.items() if k in _CHECKED_OPTIONS})
    except TypeError as err:
        raise TypeError(str(err) if str(err).startswith("tta ") else f"predict_kw: {err}") from None
    predict_kw["tta"] = tta
    _check_scheduler(scheduler)
    return predict_kw, None if report is None else check_report_path(report)


def _with_checked_values(request, predict_kw):
    """``request``, ``predict_kw``'s values checked against it before any galaxy is read: out of range (``tile=0``,
    ``precision='fp8'``), each galaxy failed on them one by one, under the argument's name without ``predict_kw``."""
    import inspect

    from ..nn.engine import check_options
    from ..translator import Translator

    defaults = {k: p.default for k, p in inspect.signature(Translator.predict).parameters.items()}
    given = {k: predict_kw.get(k, defaults[k]) for k in ("precision", "batch_size", "compile", "n_samples", "tile")}
    try:
        check_options(**given, device=request.engine.device, multiple=request.engine.multiple)
    except (TypeError, ValueError) as err:
        raise type(err)(f"predict_kw: {err}") from None
    return request


def _check_scheduler(scheduler):
    """A scheduler address that cannot be one, refused before any work (a Client hung 60 s on it, then failed)."""
    if not isinstance(scheduler, str):
        return
    from distributed.comm import parse_address
    from distributed.comm.addressing import parse_host_port

    try:
        protocol, location = parse_address(scheduler)
        if protocol in ("tcp", "tls"):
            parse_host_port(location)
    except ValueError as err:
        example = "expected an address such as 'tcp://10.0.0.1:8786'"
        raise ValueError(f"scheduler={scheduler!r}: {err} ({example})") from None


def _request(translator, band, inputs):
    """The one-mapping translator the batch runs: the model, or the request ``inputs -> band`` of an any-band one."""
    from ..bands import get_band
    from ..prediction import check_output_band, is_band_list

    if is_band_list(band):  # one run writes one band per galaxy
        raise TypeError(f"band must be one band name (a run writes one band per galaxy; run once per band), "
                        f"got {band!r}")
    if translator.card.outputs:
        if band is None:
            raise ValueError(f"model {translator.name!r} predicts any of {', '.join(translator.card.outputs)}: "
                             "say which with band=")
        band = get_band(band).name
        return translator.task(inputs=inputs or [b for b in translator.inputs if b != band], output=band)
    check_output_band(translator.card, band)
    if inputs is not None and tuple(get_band(b).name for b in inputs) != translator.inputs:
        raise ValueError(f"model {translator.name!r} reads {', '.join(translator.inputs)}; inputs= cannot change that")
    return translator


def _check_reproject_to(reproject_to, translator):
    """The canonical name of the band ``reproject_to``, which must be an input of the model (or None), or a
    pixel scale (an angle)."""
    import astropy.units as u

    from ..bands import get_band

    if isinstance(reproject_to, u.Quantity):
        if not (reproject_to.unit.physical_type == "angle" and 0 < float(reproject_to.value) < float("inf")):
            raise ValueError(f"reproject_to={reproject_to!r}: a pixel scale must be a positive angle")
        return reproject_to
    if reproject_to is not None:
        reproject_to = get_band(reproject_to).name
        if reproject_to not in translator.inputs:
            raise ValueError(
                f"reproject_to={reproject_to!r} is not an input band of model {translator.name!r} "
                f"({', '.join(translator.inputs)})"
            )
    return reproject_to


def _plan_jobs(item_list, rows, out_dir, band):
    """``[(galaxy, files, output path)]``; an id that cannot name an output or is repeated adds a row to ``rows``."""
    jobs, seen = [], {}
    for galaxy, files in item_list:
        file = files if isinstance(files, str) else ", ".join(map(str, files.values()))
        try:
            out = output_path(out_dir, galaxy, band)
        except ValueError as err:
            rows.append(report_row(galaxy, "failed", file=file, error=str(err)))
            continue
        if galaxy in seen:  # the files left out named, so that the user sees which item was not used
            rows.append(report_row(galaxy, "failed", file=file,  # the output is the other item's: not this one's
                                   error=f"duplicate galaxy id: item {seen[galaxy] + 1} already writes {out}"))
            continue
        seen[galaxy] = len(jobs)
        jobs.append((galaxy, files, str(out)))
    return jobs


def _run(jobs, ref, payload, *, scheduler, workers, torch_threads, options, progress, results):
    """The report rows of ``jobs``, run locally or on the cluster at ``scheduler``, each also put in ``results``."""
    if not jobs:
        return []
    if scheduler is None:
        return run_local(jobs, ref, payload, workers=min(workers or cores(), len(jobs)),
                         torch_threads=torch_threads, options=options, progress=progress, results=results)
    if workers is not None:
        log.info("workers=%d is ignored: the cluster at %s has its own workers", workers, scheduler)
    return _run_distributed(jobs, ref, payload, scheduler=scheduler, torch_threads=torch_threads,
                            options=options, progress=progress, results=results)


def _interrupted(jobs, results, rows, *, report):
    """Write the report of an interrupted run: the galaxies done, the others as not predicted."""
    for row in results:
        if row is not None:
            _report_warnings(row)  # a row not yet logged still holds them

    def unfinished(out):  # a worker may have written it (atomically: whole) while the run stopped
        if os.path.exists(out):
            return (f"the run was interrupted before this galaxy was reported; its output {out} exists (a rerun "
                    "checks it and keeps it if it is this run's)")
        return ("not finished: the run was interrupted (a rerun predicts it, or keeps its output if a worker still "
                "wrote it, and keeps the galaxies done)")

    done = [row if row is not None else report_row(galaxy, "failed", output=out, error=unfinished(out))
            for (galaxy, _, out), row in zip(jobs, results)]
    if report is not None:
        BatchReport([*done, *rows]).write(report)
        log.info("predict-batch interrupted: %d of %d galaxies done; report %s",
                 sum(r is not None for r in results), len(jobs), report)


def _finish(result, *, started, out_dir, report):
    """Write the report where asked, log the summary line and return ``result``."""
    c = result.counts
    ignored = f", {c['ignored']} file(s) ignored" if c["ignored"] else ""
    summary = (f"{c['done']} predicted, {c['exists']} already done, {c['failed']} failed{ignored} "
               f"in {time.perf_counter() - started:.1f} s; outputs in {out_dir}")
    if report is not None:
        result.write(report)
        summary += f"; report {report}"
    log.info("predict-batch: %s", summary)
    return result
