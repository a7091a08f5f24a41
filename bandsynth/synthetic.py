"""The predicted image of a band: :class:`SyntheticBand` and its FITS archive format.

A `SyntheticBand` is an `~astropy.nddata.NDData` (with the slicing, arithmetic
and I/O mixins, in `~astropy.nddata.NDDataRef` order) holding the predicted
image in physical flux units, its `~astropy.nddata.StdDevUncertainty`, a mask,
the inputs' WCS and ``meta["provenance"]``: a JSON-safe dict saying how the
image was made.

FITS format (:meth:`SyntheticBand.write`; read back by :meth:`SyntheticBand.read`
exactly and by `astropy.nddata.CCDData.read`; the reader and writer live in
`bandsynth.fits_io` and are registered with `astropy.io.registry`)::

    PRIMARY  float32 image; BUNIT; the WCS;
             BANDSYN (bandsynth version), BSMODEL (model), BSSHA256 (weights hash),
             BSBAND and FILTER (predicted band), DATE (of the prediction, UTC),
             BSINn / BSINFn / BSINSn / BSINHn (band, file name, checksum and HDU
             of input n),
             BSSCn / BSSOFTn / BSMAXn (asinh scaling of band n, in BUNIT; BSREF only for
             files written by bandsynth 0.1, whose scaling had a reference flux),
             BSUNCMET (uncertainty method), BSPROV (the full provenance as JSON,
             long-string convention, LONGSTRN = 'OGIP 1.0'), HISTORY lines in prose
    UNCERT   float32 standard deviation, UTYPE = 'StdDevUncertainty', same BUNIT;
             COMMENTs: what it means, and that pixel errors are correlated
    MASK     uint8, 1 = bad pixel

Every HDU carries ``CHECKSUM``/``DATASUM``; the file passes HEASARC ``fitsverify``.

Examples
--------
>>> import numpy as np
>>> from bandsynth.synthetic import SyntheticBand, make_provenance
>>> image = np.ones((4, 4), dtype=np.float32)
>>> sb = SyntheticBand(image, unit="Jy", uncertainty=0.1 * image,
...                    provenance=make_provenance("r", model="nuv_k_to_r", date="2024-05-01T12:00:00"))
>>> sb.band.name, sb.provenance["model"]
('r', 'nuv_k_to_r')
>>> doubled = sb.multiply(2)
>>> doubled.data[0, 0], doubled.band.name, doubled.provenance["history"][-1]
(np.float32(2.0), 'r', 'Arithmetic applied: numpy.multiply with 2.')
"""

from __future__ import annotations

import copy
import datetime
import json
import os
import re
import textwrap
import warnings
from collections.abc import Mapping

import numpy as np
from astropy.io import fits
from astropy.io.fits.verify import VerifyWarning
from astropy.io.registry import UnifiedReadWriteMethod
from astropy.nddata import (
    CCDData,
    NDArithmeticMixin,
    NDData,
    NDDataRef,
    NDIOMixin,
    NDSlicingMixin,
    NDUncertainty,
    StdDevUncertainty,
    UnknownUncertainty,
)
from astropy.nddata.mixins.ndio import NDDataRead
from astropy.utils.decorators import sharedmethod
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs import WCS

from .bands import Band, get_band
from .units import format_unit

__all__ = ["SyntheticBand", "make_provenance", "fits_layout", "PROVENANCE_KEYS"]

#: Keys of ``meta["provenance"]`` (more may be added; they are kept and written).
PROVENANCE_KEYS = (
    "bandsynth_version",
    "model",
    "weights_sha256",
    "band",
    "inputs",
    "date",
    "scaling",
    "uncertainty_method",
    "history",
)
_STRING_KEYS = ("bandsynth_version", "model", "weights_sha256", "band", "date", "uncertainty_method")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bandsynth")
    except PackageNotFoundError:
        return "0.0.0"


def _utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def make_provenance(
    band, *, model="", weights_sha256="", inputs=(), scaling=None, uncertainty_method="", history=(), date=None
) -> dict:
    """A complete provenance record for a :class:`SyntheticBand`.

    Parameters
    ----------
    band : str or `~bandsynth.bands.Band`
        The predicted band.
    model : str
        Name of the model that made the prediction.
    weights_sha256 : str
        SHA-256 (64 hex digits) of the model weights.
    inputs : sequence of mapping
        One ``{"band", "file", "checksum"}`` record per input image.
    scaling : mapping, optional
        Flux scaling: ``{"method": ..., "unit": ..., "bands": {band: {"softening": b, "maximum": m}}}``
        (files of bandsynth 0.1 also have a per-image ``"reference_flux"``).
    uncertainty_method : str
        How the uncertainty was computed.
    history : sequence of str
        Processing steps, in words.
    date : str, optional
        ISO 8601 date of the prediction (default: now, UTC).

    Returns
    -------
    dict
        Every key of :data:`PROVENANCE_KEYS`, with ``bandsynth_version`` the
        installed version and ``band`` the band's canonical name.

    Examples
    --------
    >>> p = make_provenance("NUV", model="g_r_to_nuv", date="2024-01-02T03:04:05")
    >>> p["band"], p["inputs"], p["date"]
    ('NUV', [], '2024-01-02T03:04:05')
    """
    return {
        "bandsynth_version": _version(),
        "model": model,
        "weights_sha256": weights_sha256,
        "band": get_band(band).name,
        "inputs": [dict(i) for i in inputs],
        "date": _utc_now() if date is None else date,
        "scaling": {} if scaling is None else dict(scaling),
        "uncertainty_method": uncertainty_method,
        "history": list(history),
    }


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"provenance values must be JSON-serialisable, got {type(obj).__name__}")


def _parse_date(text):
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"provenance date must be an ISO 8601 date, got {text!r}") from None
    if when.tzinfo is not None:
        when = when.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return when


def _normalise_provenance(provenance, band) -> dict:
    """Validated provenance with every key, as plain JSON types (so it round-trips exactly)."""
    if not isinstance(provenance, Mapping):
        raise TypeError(f"provenance must be a dict, got {type(provenance).__name__}")
    full = make_provenance(band)
    full.update(provenance)
    for key in _STRING_KEYS:
        if not isinstance(full[key], str):
            raise TypeError(f"provenance[{key!r}] must be a string, got {type(full[key]).__name__}")
    full["band"] = get_band(full["band"]).name
    _parse_date(full["date"])
    sha = full["weights_sha256"]
    if sha and not re.fullmatch(r"[0-9a-fA-F]{64}", sha):
        raise ValueError(f"provenance['weights_sha256'] must be 64 hexadecimal digits, got {sha!r}")
    if isinstance(full["inputs"], (str, Mapping)) or not isinstance(full["inputs"], (list, tuple)):
        raise TypeError("provenance['inputs'] must be a list of {'band', 'file', 'checksum'} dicts")
    inputs = []
    for n, item in enumerate(full["inputs"]):
        if not isinstance(item, Mapping):
            raise TypeError(f"provenance['inputs'][{n}] must be a dict, got {type(item).__name__}")
        missing = {"band", "file", "checksum"} - set(item)
        if missing:
            raise ValueError(f"provenance['inputs'][{n}] lacks {', '.join(sorted(missing))}")
        for key in ("band", "file", "checksum"):
            if not isinstance(item[key], str):
                raise TypeError(f"provenance['inputs'][{n}][{key!r}] must be a string")
        inputs.append({**item, "band": get_band(item["band"]).name})
    full["inputs"] = inputs
    if full["scaling"] is None:
        full["scaling"] = {}
    if not isinstance(full["scaling"], Mapping):
        raise TypeError(f"provenance['scaling'] must be a dict, got {type(full['scaling']).__name__}")
    history = full["history"]
    if isinstance(history, str) or not all(isinstance(h, str) for h in history):
        raise TypeError("provenance['history'] must be a list of strings")
    try:
        text = json.dumps(full, default=_json_default, allow_nan=False)
    except ValueError as err:
        raise ValueError(f"provenance must hold finite numbers only (it is stored as JSON): {err}") from None
    return json.loads(text)


def _band_and_provenance(band, provenance):
    """The band (from ``band`` or the provenance, which must agree) and the normalised provenance."""
    named = None if band is None else get_band(band)
    if provenance is not None and not isinstance(provenance, Mapping):
        raise TypeError(f"provenance must be a dict, got {type(provenance).__name__}")
    from_prov = None if provenance is None or "band" not in provenance else get_band(provenance["band"])
    if named is not None and from_prov is not None and named != from_prov:
        raise ValueError(f"band={named.name!r} disagrees with the provenance band {from_prov.name!r}")
    chosen = named or from_prov
    if chosen is None:
        raise ValueError("SyntheticBand needs its band: pass band= or a provenance with a 'band' entry")
    return chosen, _normalise_provenance({} if provenance is None else provenance, chosen)


def fits_layout(shape, *, unit, band=None, provenance=None, wcs=None, uncertainty=True, mask=True) -> fits.HDUList:
    """The HDUs `SyntheticBand.write` writes for a band of ``shape``, with placeholder data.

    The headers are exactly those of `SyntheticBand.to_hdulist` for such a band (provenance
    normalised and checked the same way, structural keywords of a float32 PRIMARY and
    ``UNCERT`` and a uint8 ``MASK`` of ``shape``), but the data are zero-stride views
    that take no memory: for writers that fill the pixels in afterwards, part by part
    (`bandsynth.fits_io.SyntheticBandWriter`).

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)``.
    unit : str or `~astropy.units.UnitBase`
        Flux unit of the image.
    band : str or `~bandsynth.bands.Band`, optional
        The predicted band (else taken from the provenance).
    provenance : mapping, optional
        As for `SyntheticBand`.
    wcs : `~astropy.wcs.WCS`, optional
    uncertainty, mask : bool
        Whether the file has an ``UNCERT`` and a ``MASK`` HDU.

    Returns
    -------
    `~astropy.io.fits.HDUList`

    Examples
    --------
    >>> hdul = fits_layout((3000, 2000), unit="nanomaggy", band="r")
    >>> [h.name for h in hdul], hdul[0].header["NAXIS1"], hdul["MASK"].header["BITPIX"]
    (['PRIMARY', 'UNCERT', 'MASK'], 2000, 8)
    """
    _, prov = _band_and_provenance(band, provenance)
    if wcs is not None and not isinstance(wcs, WCS):
        raise TypeError(f"SyntheticBand wcs must be an astropy.wcs.WCS, got {type(wcs).__name__}")
    shape = tuple(int(n) for n in shape)
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"SyntheticBand data must be a non-empty 2-D image, got shape {shape}")

    def placeholder(dtype):
        return np.broadcast_to(np.zeros((), dtype), shape)

    return _hdulist(prov, wcs, format_unit(unit), placeholder(np.float32),
                    placeholder(np.float32) if uncertainty else None, placeholder(np.uint8) if mask else None)


def _hdulist(prov, wcs, unit_text, data, sigma, mask) -> fits.HDUList:
    """PRIMARY (``data``), UNCERT (``sigma``, if any) and MASK (``mask``, if any) of a synthetic band."""
    hdus = [fits.PrimaryHDU(data, _primary_header(prov, wcs, unit_text))]
    if sigma is not None:
        header = fits.Header()
        header["UTYPE"] = ("StdDevUncertainty", "uncertainty type (astropy.nddata)")
        header["BUNIT"] = (unit_text, "unit of the standard deviation")
        # What photutils' aperture_sum_err would do with it is wrong: say so where the numbers are.
        header["COMMENT"] = "Per-pixel sigma: half-width of the central 68.27 % interval (BSUNCMET)."
        header["COMMENT"] = "Pixel errors are correlated: do not add sigma**2 over an aperture"
        header["COMMENT"] = "for an aperture flux error (bandsynth docs, 'Uncertainty')."
        if wcs is not None:
            header.extend(wcs.to_header(relax=True), update=True)
        hdus.append(fits.ImageHDU(sigma, header, name="UNCERT"))
    if mask is not None:
        header = fits.Header()
        header["COMMENT"] = "1 = masked (bad or untrusted) pixel, 0 = good"
        if wcs is not None:
            header.extend(wcs.to_header(relax=True), update=True)
        hdus.append(fits.ImageHDU(mask, header, name="MASK"))
    return fits.HDUList(hdus)


class _SyntheticBandRead(NDDataRead):
    """Read a `SyntheticBand` through `astropy.io.registry` (format ``"fits"``, `bandsynth.fits_io`).

    ``SyntheticBand.read(path)`` or ``SyntheticBand.read(path, format="fits")``; see
    `bandsynth.fits_io.read_synthetic_band`.  A missing file is reported with its name
    before the registry tries to identify its format.

    Parameters
    ----------
    *args
        The file (path or file object) and further positional arguments of the
        reader.
    **kwargs
        ``format`` (default: identified from the file, ``"fits"``) and further
        keyword arguments of the reader.

    Returns
    -------
    SyntheticBand
        The synthetic band read.

    Raises
    ------
    FileNotFoundError
        If the file named does not exist.
    """

    def __call__(self, *args, **kwargs):
        if args and isinstance(args[0], (str, os.PathLike)) and not os.path.exists(args[0]):
            raise FileNotFoundError(f"synthetic band file {os.fspath(args[0])!r} not found")
        return self.registry.read(self._cls, *args, **kwargs)


def _collapse(name):
    """`SyntheticBand`'s ``name`` (sum, mean, max, min): astropy's, on a plain NDDataRef (`SyntheticBand._collapsed`)."""

    def collapse(self, **kwargs):
        return self._collapsed(name, **kwargs)

    collapse.__name__, collapse.__qualname__ = name, f"SyntheticBand.{name}"
    collapse.__doc__ = f"""The {name} over the image (or along ``axis``), the masked pixels left out.

        Parameters
        ----------
        **kwargs
            Options of ``astropy.nddata.NDDataRef.{name}`` (``axis``, ``propagate_uncertainties``, ...).

        Returns
        -------
        `~astropy.nddata.NDDataRef`
            No longer an image; without uncertainty unless ``propagate_uncertainties=True``, which
            assumes independent pixels (a prediction's pixel errors are correlated).
        """
    return collapse


class SyntheticBand(NDSlicingMixin, NDArithmeticMixin, NDIOMixin, NDData):
    """A predicted image in physical units, with uncertainty, mask, WCS and provenance.

    Parameters
    ----------
    data : array-like of float, shape (ny, nx)
        The predicted image.
    uncertainty : `~astropy.nddata.StdDevUncertainty` or array-like, optional
        Per-pixel standard deviation (other `~astropy.nddata.NDUncertainty`
        types are converted).
    mask : bool array, optional
        `True` marks a pixel not to trust.
    wcs : `~astropy.wcs.WCS`, optional
        Celestial WCS (that of the input images).
    meta : mapping, optional
        Metadata; ``meta["provenance"]`` is the provenance record.
    unit : str or `~astropy.units.UnitBase`
        Flux unit of ``data`` (required).
    copy, psf
        As for `~astropy.nddata.NDData`.
    band : str or `~bandsynth.bands.Band`, optional
        The predicted band (else taken from the provenance).
    provenance : mapping, optional
        The provenance record (see :func:`make_provenance`); missing keys get
        defaults.  Stored as plain JSON types in ``meta["provenance"]``.

    Raises
    ------
    TypeError
        Data not floating point, wrong type of uncertainty, mask, WCS or provenance.
    ValueError
        Not 2-D, no unit, no band, shapes that disagree, negative uncertainty,
        band and provenance that disagree.

    Notes
    -----
    Non-finite pixels that are not masked are masked with an
    `~astropy.utils.exceptions.AstropyUserWarning`; their values are kept.
    Arithmetic (``sb.multiply(2)``, ``sb.subtract(other)``) keeps the first
    operand's provenance and adds a line to its history.
    """

    # FITS I/O goes through astropy.io.registry (bandsynth.fits_io registers "fits").
    read = UnifiedReadWriteMethod(_SyntheticBandRead)

    def __init__(
        self,
        data,
        uncertainty=None,
        mask=None,
        wcs=None,
        meta=None,
        unit=None,
        copy=False,
        psf=None,
        *,
        band=None,
        provenance=None,
    ):
        if uncertainty is not None and not isinstance(uncertainty, NDUncertainty):
            uncertainty = StdDevUncertainty(np.asarray(uncertainty))
        super().__init__(data, uncertainty=uncertainty, mask=mask, wcs=wcs, meta=meta, unit=unit, copy=copy, psf=psf)
        self._validate(band, provenance)

    # ------------------------------------------------------------------ validation
    def _validate(self, band, provenance):
        data = self.data
        if not isinstance(data, np.ndarray) or data.dtype.kind != "f":
            kind = getattr(data, "dtype", type(data).__name__)
            raise TypeError(f"SyntheticBand data must be a floating-point array, got {kind}")
        if data.ndim != 2:
            raise ValueError(f"SyntheticBand data must be a 2-D image, got shape {data.shape}")
        if data.size == 0:
            raise ValueError(f"SyntheticBand data is an empty image ({data.shape[0]} x {data.shape[1]} pixels)")
        if self.unit is None:
            raise ValueError("SyntheticBand needs a unit (physical flux units, e.g. unit='nanomaggy')")

        meta = dict(self.meta)
        if provenance is not None and "provenance" in meta:
            raise ValueError("provenance is given twice (provenance= and meta['provenance'])")
        prov = provenance if provenance is not None else meta.get("provenance")
        chosen, meta["provenance"] = _band_and_provenance(band, prov)
        self.meta = meta
        self._band = chosen

        shape = data.shape
        bad = np.zeros(shape, dtype=bool)
        if self.mask is not None:
            mask = np.asarray(self.mask)
            if mask.dtype.kind not in "biu":
                raise TypeError(f"SyntheticBand mask must be a boolean array, got dtype {mask.dtype}")
            if mask.ndim == 0:
                mask = np.broadcast_to(mask, shape)
            if mask.shape != shape:
                raise ValueError(f"SyntheticBand mask has shape {mask.shape}, expected the image shape {shape}")
            bad = mask.astype(bool)

        unc = self.uncertainty
        if unc is not None:
            if isinstance(unc, UnknownUncertainty):
                raise TypeError("SyntheticBand uncertainty must be a standard deviation (StdDevUncertainty)")
            if not isinstance(unc, StdDevUncertainty):
                unc = unc.represent_as(StdDevUncertainty)
            array = np.asarray(unc.array)
            if array.dtype.kind != "f":
                array = array.astype(float)
            own = getattr(unc, "_unit", None)
            if own is not None and own != self.unit:
                array = (array * own).to_value(self.unit)
            if array.shape != shape:
                raise ValueError(f"SyntheticBand uncertainty has shape {array.shape}, expected the image shape {shape}")
            if np.any(array < 0):
                raise ValueError("SyntheticBand uncertainty (a standard deviation) has negative values")
            self.uncertainty = StdDevUncertainty(array, copy=False)

        nonfinite = ~np.isfinite(data)
        if self.uncertainty is not None:
            nonfinite |= ~np.isfinite(self.uncertainty.array)
        newly = nonfinite & ~bad
        if newly.any():
            warnings.warn(
                f"synthetic band {chosen.name!r}: {int(newly.sum())} pixel(s) with a non-finite value or "
                "uncertainty are masked",
                AstropyUserWarning,
                stacklevel=3,
            )
            bad = bad | newly
        if self.mask is not None or newly.any():
            self.mask = bad

        if self.wcs is not None:
            if not isinstance(self.wcs, WCS):
                raise TypeError(f"SyntheticBand wcs must be an astropy.wcs.WCS, got {type(self.wcs).__name__}")
            if self.wcs.pixel_n_dim != 2:
                raise ValueError(f"SyntheticBand wcs must have 2 pixel axes, got {self.wcs.pixel_n_dim}")

    # ------------------------------------------------------------------ NDData mixin hooks
    def _slice_wcs(self, item):
        # Keep an astropy WCS (writable to FITS) rather than a sliced high-level wrapper.
        if isinstance(self.wcs, WCS):
            steps = [key.step for key in (item if isinstance(item, tuple) else (item,)) if isinstance(key, slice)]
            if any(step not in (None, 1) for step in steps):  # astropy's WCS takes a step for binning: misplaced
                raise ValueError(f"a SyntheticBand with a WCS cannot be sliced with a step ({item!r}): its pixels "
                                 "would not lie where the sliced WCS puts them; resample it onto a coarser WCS "
                                 "with the reproject package (reproject.reproject_exact) instead")
            try:
                return self.wcs[item]
            except Exception as err:  # any slicing failure is reported the NDData way
                self._handle_wcs_slicing_error(err, item)
        return super()._slice_wcs(item)

    @sharedmethod
    def _convert_operand_class_with_suitable_dtype(self_or_cls, target_cls, operand, ref=None):
        # A plain number or array operand has no band or unit of its own: wrap it in
        # NDDataRef rather than in a SyntheticBand, which would refuse it.
        if isinstance(target_cls, type) and issubclass(target_cls, SyntheticBand) and not isinstance(operand, NDData):
            target_cls = NDDataRef
        return NDArithmeticMixin._convert_operand_class_with_suitable_dtype(target_cls, operand, ref=ref)

    def _arithmetic(self, operation, operand, *args, **kwargs):
        # Keep the provenance (astropy drops meta by default) and record the operation.
        kwargs.setdefault("handle_meta", "first_found")
        result, init_kwds = super()._arithmetic(operation, operand, *args, **kwargs)
        value = getattr(operand, "data", operand)
        by = f" with {float(np.asarray(value).item()):.6g}" if np.size(value) == 1 else " with an image"
        init_kwds["meta"] = _with_history(init_kwds.get("meta"), f"Arithmetic applied: numpy.{operation.__name__}{by}.")
        return result, init_kwds

    def _collapsed(self, name, **kwargs):
        # A sum, mean, max or min is no image: a plain NDDataRef, the masked pixels left out.  Its
        # uncertainty is not propagated unless asked for: astropy's propagation assumes independent pixels, and a
        # prediction's pixel errors are correlated, so a sum's propagated sigma would understate its error.
        kwargs.setdefault("propagate_uncertainties", None)
        kwargs.setdefault("operation_ignores_mask", True)  # astropy's default counts them (NaN)
        plain = NDDataRef(self.data, uncertainty=self.uncertainty, mask=self.mask, unit=self.unit, meta=self.meta)
        return getattr(plain, name)(**kwargs)

    sum, mean, max, min = (_collapse(name) for name in ("sum", "mean", "max", "min"))

    def _slice(self, item):
        # NDData keeps the meta of a slice: say in the provenance which part of the prediction this is.
        kwargs = super()._slice(item)
        parts = item if isinstance(item, tuple) else (item,)
        text = ", ".join(f"{p.start or ''}:{p.stop or ''}{'' if p.step in (None, 1) else f':{p.step}'}"
                         if isinstance(p, slice) else repr(p) for p in parts)
        kwargs["meta"] = _with_history(kwargs.get("meta"), f"Cut out [{text}] (rows, columns) of the prediction.")
        return kwargs

    # ------------------------------------------------------------------ properties
    @property
    def band(self) -> Band:
        """The predicted `~bandsynth.bands.Band`."""
        return self._band

    @property
    def provenance(self) -> dict:
        """``meta["provenance"]``."""
        return self.meta["provenance"]

    def __repr__(self):
        ny, nx = self.data.shape
        n_masked = 0 if self.mask is None else int(np.count_nonzero(self.mask))
        return (
            f"<SyntheticBand {self.band.name}: {ny} x {nx} pixels, unit {format_unit(self.unit)}, "
            f"model {self.provenance['model']!r}, uncertainty {'yes' if self.uncertainty is not None else 'no'}, "
            f"{n_masked} masked pixel(s)>"
        )

    def to_ccddata(self) -> CCDData:
        """A `~astropy.nddata.CCDData` copy (data, unit, uncertainty, mask, WCS, header).

        Returns
        -------
        `~astropy.nddata.CCDData`
            Deep copies of the data, uncertainty (`~astropy.nddata.StdDevUncertainty`),
            mask and WCS, in the same unit; its ``meta`` is the primary header
            :meth:`write` gives the file (the provenance as the JSON of ``BSPROV``
            and ``HISTORY`` lines), as `CCDData.read <astropy.nddata.CCDData.read>`
            of that file has it, so that ``CCDData.write`` can store it.

        Examples
        --------
        >>> import numpy as np
        >>> from bandsynth.synthetic import make_provenance
        >>> sb = SyntheticBand(np.ones((4, 4), dtype=np.float32), unit="nanomaggy",
        ...                    provenance=make_provenance("r", model="nuv_k_to_r", date="2024-05-01T12:00:00"))
        >>> ccd = sb.to_ccddata()
        >>> ccd.meta["BSBAND"], ccd.meta["BSMODEL"], ccd.unit == sb.unit
        ('r', 'nuv_k_to_r', True)
        """
        # A dict of dicts in meta (the provenance) is what CCDData.write cannot put in a header.
        return CCDData(
            np.array(self.data),
            unit=self.unit,
            uncertainty=None if self.uncertainty is None else StdDevUncertainty(np.array(self.uncertainty.array)),
            mask=None if self.mask is None else np.array(self.mask),
            wcs=copy.deepcopy(self.wcs),
            meta=_primary_header(self.provenance, None, format_unit(self.unit)),
        )

    # ------------------------------------------------------------------ FITS
    def to_hdulist(self) -> fits.HDUList:
        """The FITS representation (PRIMARY, UNCERT, MASK) described in the module docstring.

        Returns
        -------
        `~astropy.io.fits.HDUList`
            PRIMARY (float32 image and the provenance keywords), then UNCERT
            when there is an uncertainty and MASK when there is a mask.  No
            checksums yet: :meth:`write` adds them.
        """
        return _hdulist(
            self.provenance, self.wcs, format_unit(self.unit), np.asarray(self.data, dtype=np.float32),
            None if self.uncertainty is None else np.asarray(self.uncertainty.array, dtype=np.float32),
            None if self.mask is None else np.asarray(self.mask, dtype=np.uint8),
        )

    # ------------------------------------------------------------------ thin bridges
    def compare(self, truth, **kwargs):
        """Metrics against a true image: `bandsynth.metrics.compare` (self, truth).

        Parameters
        ----------
        truth : array, NDData, CCDData or FITS path
            The observed (or simulated) image of the same band, on the same grid.
        **kwargs
            Further arguments of `bandsynth.metrics.compare` (``inputs``,
            ``scaling``, ``reference``, ``footprint``, ``data_range``,
            ``segmentation``).

        Returns
        -------
        `~bandsynth.metrics.ComparisonReport`
            The metrics.
        """
        from .metrics import compare

        return compare(self, truth, **kwargs)

    def morphology(self, **kwargs):
        """Gini, M20, CAS... of the prediction: `bandsynth.morphology.measure_morphology`.

        Parameters
        ----------
        **kwargs
            Arguments of `bandsynth.morphology.measure_morphology` (``segmap``,
            ``label``, ``mask``, ``gain``, ``psf``, ``sersic``...); the
            uncertainty defaults to the prediction's.

        Returns
        -------
        `~bandsynth.morphology.MorphologyResult`
            The morphology of the central galaxy.
        """
        from .morphology import measure_morphology

        return measure_morphology(self, **kwargs)

    def plot(self, **kwargs):
        """Paper-style panel: `bandsynth.plotting.plot_synthetic`.

        Parameters
        ----------
        **kwargs
            Arguments of `bandsynth.plotting.plot_synthetic`: ``truth``,
            ``inputs`` and those of `bandsynth.plotting.plot_panel`.

        Returns
        -------
        matplotlib.figure.Figure
            The panel (inputs | truth | prediction | residual | sigma).
        """
        from .plotting import plot_synthetic

        return plot_synthetic(self, **kwargs)


def _with_history(meta, line):
    """``meta`` with ``line`` added to a copy of its provenance's history (as it is without a provenance)."""
    if not (isinstance(meta, Mapping) and isinstance(meta.get("provenance"), Mapping)):
        return meta
    prov = copy.deepcopy(dict(meta["provenance"]))
    prov["history"] = [*prov.get("history", []), line]
    return {**meta, "provenance": prov}


# ---------------------------------------------------------------------- FITS helpers
def _ascii(text) -> str:
    """Header text: readable printable ASCII (the exact text is in BSPROV)."""
    from ._io import fits_ascii

    return fits_ascii(text)


def _scaling_entries(scaling):
    """``(reference flux, [(band, softening, maximum), ...])`` from a provenance scaling dict."""
    ref = scaling.get("reference_flux", scaling.get("reference"))
    bands = scaling.get("bands", scaling)
    entries = []
    if isinstance(bands, Mapping):
        for name, params in bands.items():
            if isinstance(params, Mapping) and "softening" in params and "maximum" in params:
                entries.append((str(name), params["softening"], params["maximum"]))
    return ref, entries


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)


class _Header(fits.Header):
    """A header whose cards drop their comment rather than have it truncated."""

    def __setitem__(self, key, value):
        if isinstance(value, tuple) and len(value) == 2:
            with warnings.catch_warnings():
                warnings.simplefilter("error", VerifyWarning)
                try:
                    str(fits.Card(key, *value))
                except VerifyWarning:
                    value = value[0]
        super().__setitem__(key, value)


def _history_lines(text, width=70):
    """Split ``text`` into HISTORY card lines at word boundaries (astropy would cut words)."""
    return textwrap.wrap(text, width=width, break_long_words=True, break_on_hyphens=False) or [""]


def _primary_header(prov, wcs, unit_text) -> fits.Header:
    hdr = _Header()
    hdr["BUNIT"] = (unit_text, "physical unit of the pixel values")
    hdr["DATE"] = (_parse_date(prov["date"]).strftime("%Y-%m-%dT%H:%M:%S"), "UTC date of the prediction")
    hdr["BANDSYN"] = (_ascii(prov["bandsynth_version"]), "bandsynth version")
    hdr["BSMODEL"] = (_ascii(prov["model"]), "bandsynth model")
    hdr["BSSHA256"] = (_ascii(prov["weights_sha256"]), "SHA-256 of the model weights")
    hdr["BSBAND"] = (prov["band"], "predicted band")
    hdr["FILTER"] = (prov["band"], "filter of the predicted (synthetic) band")
    for n, item in enumerate(prov["inputs"], start=1):
        hdr[f"BSIN{n}"] = (item["band"], f"input band {n}")
        hdr[f"BSINF{n}"] = (_ascii(os.path.basename(item["file"]) or item["file"]), f"input file {n}")
        hdr[f"BSINS{n}"] = (_ascii(item["checksum"]), f"checksum of input file {n}")
        if "hdu" in item:  # the HDU read from a file of several
            hdr[f"BSINH{n}"] = (_ascii(item["hdu"]), f"HDU of input file {n}")
    ref, entries = _scaling_entries(prov["scaling"])
    unit_note = prov["scaling"].get("unit", unit_text)
    if _is_number(ref):
        hdr["BSREF"] = (float(ref), _ascii(f"reference flux of the asinh scaling [{unit_note}]")[:47])
    for n, (name, soft, maximum) in enumerate(entries, start=1):
        hdr[f"BSSC{n}"] = (_ascii(name), f"band of asinh scaling {n}")
        if _is_number(soft):
            hdr[f"BSSOFT{n}"] = (float(soft), f"softening of scaling {n}" + (" / ref. flux" if _is_number(ref) else ""))
        if _is_number(maximum):
            hdr[f"BSMAX{n}"] = (float(maximum), f"maximum of scaling {n}" + (" / ref. flux" if _is_number(ref) else ""))
    hdr["BSUNCMET"] = (_ascii(prov["uncertainty_method"]), "uncertainty method")
    if wcs is not None:
        hdr.extend(wcs.to_header(relax=True), update=True)
    hdr["LONGSTRN"] = ("OGIP 1.0", "long string convention (CONTINUE) is used")
    hdr["BSPROV"] = (json.dumps(prov, ensure_ascii=True, separators=(",", ":")), "provenance (JSON)")
    inputs = ", ".join(f"{i['band']} ({os.path.basename(i['file']) or 'no file'})" for i in prov["inputs"])
    lines = [
        f"Synthetic {prov['band']} image predicted by bandsynth {prov['bandsynth_version']}"
        + (f" with model {prov['model']}" if prov["model"] else "")
        + (f" from {inputs}." if inputs else "."),
        *prov["history"],
        "The complete provenance record is the JSON in keyword BSPROV.",
    ]
    for line in lines:
        for part in _history_lines(_ascii(line)):
            hdr.add_history(part)
    return fits.Header(hdr.cards)
