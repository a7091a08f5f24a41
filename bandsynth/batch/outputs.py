"""The outputs of a batch: their paths, the checks of existing outputs, stale temporaries.

Part of `bandsynth.batch`; import the public names from there.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from ..restored_noise import smoothing_shift
from .manifest import id_problem

__all__ = ["output_path", "output_problem", "recorded_warnings", "remove_stale_temporaries", "check_writable"]

log = logging.getLogger("bandsynth.batch")


def output_path(out_dir, galaxy, band) -> Path:
    """The output file of ``galaxy``: ``out_dir/<galaxy>_<band>_synth.fits``.

    Parameters
    ----------
    out_dir : str or os.PathLike
        Output folder.
    galaxy : str
        Galaxy id.
    band : str or `~bandsynth.bands.Band`
        Predicted band; its canonical name goes into the file name.

    Returns
    -------
    pathlib.Path
        The output path (relative if ``out_dir`` is).

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
    from ..bands import get_band

    problem = id_problem(galaxy)
    if problem:
        raise ValueError(problem)
    out_dir = Path(out_dir)
    path = out_dir / f"{galaxy}_{get_band(band).name}_synth.fits"
    # Belt and braces: the file must sit directly in out_dir.
    if os.path.dirname(os.path.abspath(path)) != os.path.abspath(out_dir):
        raise ValueError(f"galaxy id {galaxy!r} would write outside the output folder {str(out_dir)!r}")
    return path


# ---------------------------------------------------------------------- output validation
def _input_checksums(files, needed):
    from ..models.zoo import sha256_file

    if isinstance(files, str):
        digest = sha256_file(files)
        return {b: digest for b in needed}
    return {b: sha256_file(files[b]) for b in needed}


def output_problem(path, *, name, sha256, band, files, needed, hdus=None, options=None, reproject_to=None,
                   card_sha256=None):
    """Why the existing file ``path`` is not this model's output for these inputs, or None.

    The file must be readable FITS with a primary image, pass its
    ``CHECKSUM``/``DATASUM`` checks, record this model, weights and band
    (``BSMODEL``, ``BSSHA256``, ``BSBAND``), and its provenance (``BSPROV``)
    must record the same card (the SHA-256 of what of it shapes a prediction,
    `~bandsynth.models.zoo.ModelCard.prediction_sha256`: a model recalibrated since
    states another σ), the same input bands, the SHA-256 of the current input files,
    the same ``predict`` options and the same reprojection target.

    Parameters
    ----------
    path : str or os.PathLike
        The existing output file.
    name : str
        Model name.
    sha256 : str
        SHA-256 of the model's weights.
    band : str
        The model's output band.
    files : dict or str
        The galaxy's inputs: ``{band: path}`` or one multi-extension path.
    needed : sequence of str
        The model's input bands.
    hdus : dict, optional
        ``{band: HDU}`` of the inputs read from one named HDU of their file.
    options : dict, optional
        This run's `~bandsynth.Translator.predict` options ``uncertainty``, ``tta``,
        ``n_samples`` and ``seed`` (an output made with others is not this run's; a file
        that does not record them, made before bandsynth 0.2, is checked for ``tta``
        alone); None: not checked.
    reproject_to : str or None
        This run's reprojection target (`bandsynth.resample.describe_target`), None for none.
    card_sha256 : str, optional
        `~bandsynth.models.zoo.ModelCard.prediction_sha256` of the model's card; None (or a
        file that does not record it): not checked.

    Returns
    -------
    str or None
        Why the file is not a valid output (completes the sentence "output
        exists but ..."), or None when it is.
    """
    from .._io import open_whole_fits

    hdus = dict(hdus or {})
    try:
        with open_whole_fits(path) as hdul:  # a file cut short is named as such
            if "CHECKSUM" not in hdul[0].header:  # (verify_checksum() says 2, not 1, as for a wrong one)
                return "has no CHECKSUM: it is not a bandsynth output"
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
    records = {i.get("band"): i for i in prov.get("inputs", ()) if isinstance(i, dict)}
    if set(records) != set(needed):  # an any-band model's output from another request
        return f"was made from {' + '.join(map(str, records)) or 'no bands'}, not from {' + '.join(needed)}"
    made_card = prov.get("prediction_card_sha256")
    if card_sha256 and made_card and made_card != card_sha256:
        return (f"was made by another card of model {name!r} (the SHA-256 of what of the card shapes a prediction "
                f"{str(made_card)[:12]}, now {card_sha256[:12]}: its scaling or calibration changed since, its σ may "
                "differ)")
    problem = (None if options is None else _options_problem(prov, options)) or _grid_problem(prov, header,
                                                                                                reproject_to)
    if problem:
        return problem
    try:
        current = _input_checksums(files, needed)
    except OSError as err:
        return f"cannot be checked against its inputs ({err})"
    changed = [b for b in needed if records.get(b, {}).get("checksum") != current[b]]
    if changed:
        return f"was made from other input files (checksum of band(s) {', '.join(changed)} differs)"
    moved = [b for b in hdus if str(records[b].get("hdu", "")).upper() != str(_hdu_name(files[b], hdus[b])).upper()]
    if moved:
        return f"was made from other HDUs of its input files (band(s) {', '.join(moved)})"
    # An HDU named then, none now: the reader may take another (the file's first image, or its band's own).
    unnamed = [f"{b} ({files[b]}[{records[b]['hdu']}])" for b in needed
               if b not in hdus and records[b].get("hdu_named") and isinstance(files, dict)]
    if unnamed:
        return (f"was made from the HDU named for band(s) {', '.join(unnamed)}, and this run names none (the reader "
                "may take another; name it again to keep the output)")
    return None


def recorded_warnings(path):
    """The warnings an output's provenance records: its domain warnings and its masked pixels.

    What a resumed batch reports for an output it keeps, as the run that made it did.

    Parameters
    ----------
    path : str or os.PathLike
        A valid output (`output_problem` found none).

    Returns
    -------
    list of str
    """
    from astropy.io import fits

    from ..prediction import MASKED_PIXELS_NOTE

    prov = json.loads(fits.getheader(path).get("BSPROV", "{}"))
    masked = [line for line in prov.get("history", ()) if line.endswith(MASKED_PIXELS_NOTE)]
    return [*prov.get("domain_warnings", ()), *masked]


def _effective(options, *, restored):
    """The options that change a prediction: draws only with an uncertainty; the seed only with draws, or where
    the output's inputs had their noise restored (``restored``)."""
    uncertainty, draws = bool(options.get("uncertainty", True)), int(options.get("n_samples", 0))
    return {"uncertainty": uncertainty, "tta": bool(options.get("tta", False)),
            "n_samples": draws if uncertainty else None,
            "seed": options.get("seed") if (uncertainty and draws) or restored else None}


def _options_problem(prov, options):
    computation = prov.get("computation") or {}
    made = computation.get("options")
    if made is None:  # made before the options were recorded: tta from "computation" or the calibration's name
        tta = bool(computation["tta"]) if "tta" in computation else "tta" in str(prov.get("calibration", ""))
        made, options = {"tta": tta}, {"tta": bool(options.get("tta", False))}
    else:
        restored = bool(computation.get("restored_noise"))
        # whether the noise was restored matters only where an input was resampled by a sub-pixel shift of its grid;
        # unknown for an output made before the option (None: not compared).  ``options["restore_noise"]``: this
        # run's, resolved for its model (`bandsynth.models.domain.restores_noise`)
        shifted = restored or any(smoothing_shift(r) for r in prov.get("reprojection") or ())
        made_restored = restored if shifted and "restore_noise" in made else None
        made, options = ({**_effective(made, restored=restored), "restore_noise": made_restored},
                         {**_effective(options, restored=restored),
                          "restore_noise": options.get("restore_noise") if shifted else None})
    differ = [k for k in made if made[k] != options[k]]
    if not differ:
        return None
    # what one side did not use (draws without sigma, a seed without draws) says nothing more
    differ = [k for k in differ if made[k] is not None and options[k] is not None]
    if not differ:
        return None
    if differ == ["tta"]:
        return (f"was made {'with' if made['tta'] else 'without'} test-time augmentation (--tta, tta=True) "
                f"and this run is {'without' if made['tta'] else 'with'} it")
    return (f"was made with {', '.join(f'{k}={made[k]!r}' for k in differ)} and this run asks for "
            f"{', '.join(f'{k}={options[k]!r}' for k in differ)}")


def _grid_words(target):
    if target is None:
        return "the inputs' own grid"
    if target == "a given grid":
        return "a grid given to reproject_to"
    value = f"{target.split()[0]} * u.arcsec" if target.endswith(" arcsec") else repr(target)
    return f"the grid of --reproject-to {target.split()[0]} (reproject_to={value})"


def _grid_problem(prov, header, reproject_to):
    """Whether the output is on the grid this run's reprojection target gives."""
    records = [r for r in prov.get("reprojection") or () if isinstance(r, dict)]
    if any("requested" not in r for r in records):  # made before targets were recorded: cannot tell
        return None
    made = records[-1]["requested"] if records else None
    if made == reproject_to or reproject_to == "a given grid":
        return None
    if made is None and not str(reproject_to).endswith(" arcsec"):
        return None  # no band moved: the bands shared one grid, which reprojecting onto one of them keeps
    if made is None:  # on the inputs' own grid: this run's too if it is of the pixel scale asked for
        from astropy.wcs import WCS

        from ..units import pixel_area

        try:  # the side of a pixel, as the reprojection records measure it
            scale = float(np.sqrt(pixel_area(WCS(header), "the output").value)) * 3600.0
        except Exception:  # no celestial WCS: not the grid of a pixel scale
            scale = None
        if scale is not None and abs(scale / float(reproject_to.split()[0]) - 1.0) < 1e-6:
            return None
    return f"was made on {_grid_words(made)} and this run puts the inputs on {_grid_words(reproject_to)}"


def _hdu_name(path, hdu):
    """An HDU given by number as the reader records it: its EXTNAME when it has one."""
    if not isinstance(hdu, int):
        return hdu
    from astropy.io import fits

    try:
        with fits.open(path) as hdul:
            return hdul[hdu].name or hdu
    except (OSError, IndexError):
        return hdu


def remove_stale_temporaries(path):
    """Remove temporary files a killed run left next to ``path`` (atomic writes use ``.NAME.*.tmp``).

    Files that cannot be removed are left alone.

    Parameters
    ----------
    path : str or os.PathLike
        The output file whose temporaries (``.<name>.*.tmp`` in the same folder)
        are removed.
    """
    pattern = os.path.join(glob.escape(os.path.dirname(path)), f".{glob.escape(os.path.basename(path))}.*.tmp")
    for tmp in glob.glob(pattern):
        try:
            os.remove(tmp)
            log.info("removed %s, left by an interrupted run", tmp)
        except OSError:
            pass


def check_writable(out_dir):
    """Create ``out_dir`` and make sure files can be written there, before any galaxy is predicted.

    Parameters
    ----------
    out_dir : pathlib.Path
        Output folder; created with its parents if needed, then a probe file is
        created and removed.

    Raises
    ------
    PermissionError
        The folder cannot be created or written.
    """
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out_dir, prefix=".bandsynth-probe-")
        os.close(fd)
        os.remove(probe)
    except OSError as err:
        raise PermissionError(
            f"output folder {out_dir} cannot be written ({err.strerror or type(err).__name__}); nothing was predicted"
        ) from None
