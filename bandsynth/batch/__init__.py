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
  ``BSSHA256``) with this card (its SHA-256 in the provenance) for this band
  from these very input files (their SHA-256) --
  and predicts the rest.  An existing output that is not valid (corrupt, stale,
  another model) is replaced only with ``overwrite=True``, else reported.
* **One bad galaxy never stops the batch.**  Each failure (unreadable or
  truncated file, missing band, all-NaN image, shapes or WCS that disagree,
  image smaller than the network's receptive field, unsafe id...) becomes a
  row of the `BatchReport`; the rest is predicted.  Images too large for one
  network pass are predicted in overlapping tiles by the translator.
* **Safe names.**  A galaxy id is used in a file name only if it cannot leave
  the output folder (no ``/``, ``\\``, leading ``.``, control characters).

The work is split by concern: `bandsynth.batch.manifest` (the galaxies: manifests,
folder scans, lists, ids), `bandsynth.batch.outputs` (output paths, checks of existing
outputs), `bandsynth.batch.report` (`BatchReport`), `bandsynth.batch.workers` (what runs
on a worker: the model cache, one galaxy's prediction) and `bandsynth.batch.run` (local
and distributed runs, :func:`predict_many`).  Import the public names from
`bandsynth.batch`.

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

from .manifest import read_manifest
from .outputs import output_path
from .report import REPORT_COLUMNS, STATUSES, BatchReport  # noqa: F401
from .run import predict_many

__all__ = ["BatchReport", "predict_many", "read_manifest", "output_path"]
