"""Illustris-1 broadband mock images (Torrey et al. 2015) as :class:`~bandsynth.stack.BandStack`.

Two layouts are read:

* ``broadband_<subhaloID>.fits`` -- the Sunrise output served by the Illustris
  "stellar mocks" (Galaxy Observatory).  :func:`read_illustris_broadband` reads
  one camera of one file, :func:`iter_illustris` walks a folder of them.
* the per-band HDF5 files the Illustris web API serves
  (``.../subhalos/<id>/stellar_mocks/broadband.hdf5?band=<n>``), one file per
  band with one dataset per camera: :func:`read_illustris_hdf5`.

What the real layout looks like, and where that comes from
----------------------------------------------------------
No Illustris file can be fetched here, so the layout below was gathered from
the public reading code of the people who made the mocks and from other
published readers (read, not copied):

* ptorrey/sunpy, ``sunpy__load.py`` and ``sunpy__synthetic_image.py``
  (Torrey & Snyder, the Illustris image pipeline): image cubes in HDUs
  ``CAMERA<i>-BROADBAND-NONSCATTER`` / ``CAMERA<i>-BROADBAND`` with shape
  (n_filter, npix, npix) "in W/m/m^2/str"; the filter table in HDU
  ``FILTERS``, filter names in its first column, effective wavelengths in
  column ``lambda_eff`` in metres (converted with c in m/s), per-camera
  magnitudes in ``AB_mag_nonscatter<i>``; ``CAMERA<i>-PARAMETERS`` header with
  ``linear_fov`` (kpc), ``cameradist`` (kpc), ``theta``, ``phi``; the
  redshift in the ``BROADBAND`` header (``REDSHIFT``).  Filter indices 0-1 are
  GALEX FUV/NUV and 2-6 SDSS ugriz; names look like ``"g_SDSS.res"``.
* G. Snyder's Sunrise export scripts (e.g. ``vela_export_image``): column
  ``filter`` of ``FILTERS`` holds the names, the image header carries the pixel
  size in kpc as ``CD1_1``; other readers take the unit from ``IMUNIT``
  (Sunrise writes ``W/m/m^2/Sr``) and the angular field of view in radians
  from ``FOV`` in the camera-parameters header.
* the band-conversion peer code (Zaazou et al.) reads the API's per-band HDF5
  files as datasets ``camera0`` ... ``camera3`` holding 2-D images (256 x 256).

Because details vary between Sunrise versions, the reader is liberal: HDU and
column names are matched case-insensitively, filter names are recognised in
many spellings (``"FUV_GALEX.res"``, ``"GALEX_FUV"``, ``"sdss_g"``,
``"2MASS/Ks_2mass.res"``...), and a unit that cannot be parsed falls back to
the Sunrise unit with a warning.  It is strict where something needed is
missing: no FILTERS table, no image HDU for the camera, a requested band
absent, a cube whose planes do not match the filter table, or a truncated
file raise :class:`~bandsynth.datasets.errors.DataFormatError` naming the file.

Celestial WCS.  The mocks have no sky position, only a pixel size in kpc and
(usually) the camera's angular field of view.  So that a stack can be
reprojected, the reader builds a local gnomonic (TAN) WCS with the camera's
angular pixel scale, centred on the nominal position
``NOMINAL_POSITION`` (RA 180 deg, Dec 0 deg); ``stack.meta["wcs_note"]`` says
so.  The angular scale comes from ``FOV`` / npix, else from the pixel size in
kpc divided by ``cameradist``; ``pixel_scale=`` overrides both.  Without any
of them the stack has no WCS and a warning says why.
"""

from __future__ import annotations

import os
import re
import warnings
from collections import namedtuple
from collections.abc import Mapping
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs import WCS

from ..bands import get_band
from ._fits import as_path, open_fits, read_section
from .errors import DataFormatError

__all__ = [
    "SUNRISE_UNIT",
    "NOMINAL_POSITION",
    "IllustrisView",
    "read_illustris_broadband",
    "read_illustris_hdf5",
    "iter_illustris",
    "match_filter_name",
]

#: Unit of the Sunrise broadband images: surface brightness per unit wavelength.
SUNRISE_UNIT = u.W / u.m**3 / u.sr

#: (RA, Dec) in degrees at which the nominal TAN WCS of a mock image is centred.
NOMINAL_POSITION = (180.0, 0.0)

IllustrisView = namedtuple("IllustrisView", ["subhalo", "camera", "path", "stack"])
IllustrisView.__doc__ = """One camera of one Illustris file, as yielded by :func:`iter_illustris`.

Attributes
----------
subhalo : int or None
    Subhalo id parsed from the file name, or None when the name carries none.
camera : int or None
    Camera number, or None when the whole file could not be read.
path : pathlib.Path
    The FITS file.
stack : `~bandsynth.stack.BandStack` or Exception
    The camera's images, or the exception raised while reading them when
    ``errors="yield"``.
"""

# Filter-name tokens of the surveys bandsynth knows, mapped to registry names.
_SURVEY_BANDS = {
    "galex": {"fuv": "FUV", "nuv": "NUV"},
    "sdss": {"u": "u", "g": "g", "r": "r", "i": "i", "z": "z"},
    "2mass": {"j": "J", "h": "H", "ks": "Ks", "k": "Ks"},
    "twomass": {"j": "J", "h": "H", "ks": "Ks", "k": "Ks"},
}
_NAME_COLUMNS = ("filter", "filters", "filter_name", "filtername", "name", "band")
_LAMBDA_COLUMNS = ("lambda_eff", "lambda", "lam_eff", "wavelength", "leff")
_UNIT_KEYS = ("IMUNIT", "BUNIT", "UNIT", "UNITS")
#: ``meta["unit_source"]`` of images whose file states no unit.
_ASSUMED_UNIT = "assumed (Sunrise W/m/m^2/sr)"


def match_filter_name(name):
    """Return the registry `~bandsynth.bands.Band` a Sunrise filter name denotes, or None.

    A name is recognised when it carries a survey (GALEX, SDSS, 2MASS) and one
    of that survey's band letters, in any order, case and separator; FUV and NUV
    are recognised on their own.  Other filters (Johnson, IRAC, ACS...) give None.

    Parameters
    ----------
    name : str or bytes
        A filter name as in the ``FILTERS`` table of a Sunrise file, e.g.
        ``"FUV_GALEX.res"``; a file suffix ``.res``/``.dat``/``.txt``/``.par`` is
        ignored, bytes are decoded as ASCII.

    Returns
    -------
    `~bandsynth.bands.Band` or None
        The band, or None for a filter bandsynth does not know.

    Raises
    ------
    TypeError
        If ``name`` is not a string (or bytes).

    Examples
    --------
    >>> match_filter_name("FUV_GALEX.res").name
    'FUV'
    >>> match_filter_name("sdss_g").name, match_filter_name("2MASS/Ks_2mass.res").name
    ('g', 'Ks')
    >>> match_filter_name("K_Johnson.res") is None
    True
    """
    if isinstance(name, bytes):
        name = name.decode("ascii", "replace")
    if not isinstance(name, str):
        raise TypeError(f"filter name must be a string, got {type(name).__name__}")
    text = re.sub(r"\.(res|dat|txt|par)$", "", name.strip().lower())
    tokens = [t for t in re.split(r"[^a-z0-9]+", text) if t]
    for survey, letters in _SURVEY_BANDS.items():
        if survey in tokens:
            rest = {t for t in tokens if t not in _SURVEY_BANDS} & set(letters)
            if len(rest) == 1:
                return get_band(letters[rest.pop()])
            return None
        for token in tokens:  # glued spellings: "sdssg", "ks2mass"
            for letter, band in letters.items():
                if token in (survey + letter, letter + survey):
                    return get_band(band)
    if tokens in (["fuv"], ["nuv"]):
        return get_band(tokens[0])
    return None


def _column(names, wanted):
    """The first of ``wanted`` among the column ``names`` (case-insensitive), or None."""
    lowered = {n.lower(): n for n in names}
    return next((lowered[key] for key in wanted if key in lowered), None)


def _filter_table(hdul, path):
    """Filter names (str), effective wavelengths (nm Quantity or None) of the FILTERS HDU."""
    if "FILTERS" not in hdul:
        present = ", ".join(h.name for h in hdul)
        raise DataFormatError(f"{path}: missing HDU 'FILTERS' (the filter table); HDUs present: {present}")
    hdu = hdul["FILTERS"]
    if hdu.data is None or not hasattr(hdu, "columns"):
        raise DataFormatError(f"{path}: HDU 'FILTERS' is not a table")
    names = list(hdu.columns.names)
    name_col = _column(names, _NAME_COLUMNS)
    if name_col is None:  # Sunrise keeps the names in the first column
        string_cols = [c.name for c in hdu.columns if c.format.endswith("A")]
        if not string_cols:
            raise DataFormatError(
                f"{path}: FILTERS table has no column of filter names (columns present: {', '.join(names)})"
            )
        name_col = string_cols[0]
    filters = [
        (v.decode("ascii", "replace") if isinstance(v, bytes) else str(v)).strip()
        for v in hdu.data[name_col]
    ]
    lam_col = _column(names, _LAMBDA_COLUMNS)
    lam = None
    if lam_col is not None:
        unit_str = hdu.columns[lam_col].unit
        try:  # Sunrise gives no TUNIT: metres
            lam = (np.asarray(hdu.data[lam_col], dtype=float) * u.Unit(unit_str or "m")).to(u.nm)
        except (ValueError, u.UnitsError):  # not a length: wavelengths are only used for a check
            lam = None
    return filters, lam


def _select_bands(filters, lam, bands, path):
    """Map registry bands to (index in FILTERS, filter name)."""
    found = {}
    for index, fname in enumerate(filters):
        band = match_filter_name(fname)
        if band is None or band.name in found:
            continue
        found[band.name] = (index, fname)
        if lam is not None and np.isfinite(lam[index]):
            ratio = (lam[index] / band.wavelength).decompose().value
            if not 0.67 < ratio < 1.5:
                warnings.warn(
                    f"{path}: filter {fname!r} has lambda_eff {lam[index]:.1f}, far from "
                    f"band {band.name!r} ({band.wavelength:.1f}); check the filter mapping",
                    AstropyUserWarning,
                    stacklevel=4,
                )
    if bands is None:
        if not found:
            raise DataFormatError(
                f"{path}: none of the filters in the FILTERS table is a GALEX, SDSS or 2MASS band "
                f"(filters present: {', '.join(filters)})"
            )
        return found
    if isinstance(bands, str):
        bands = [bands]
    chosen = {}
    for name in bands:
        band = get_band(name)
        if band.name not in found:
            raise DataFormatError(
                f"{path}: band {band.name!r} is not in the FILTERS table "
                f"(filters present: {', '.join(filters)})"
            )
        chosen[band.name] = found[band.name]
    return chosen


def _parse_unit(text, label):
    if text is None:
        return None
    text = re.sub(r"(?<![A-Za-z])Sr(?![A-Za-z])", "sr", str(text).strip())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", u.UnitsWarning)
            return u.Unit(text)
    except ValueError:
        warnings.warn(
            f"{label}: unit {text!r} is not understood; assuming {SUNRISE_UNIT}",
            AstropyUserWarning,
            stacklevel=4,
        )
        return None


def _nominal_wcs(shape, scale_deg):
    ny, nx = shape
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.cunit = ["deg", "deg"]
    wcs.wcs.crval = list(NOMINAL_POSITION)
    wcs.wcs.crpix = [(nx + 1) / 2.0, (ny + 1) / 2.0]
    wcs.wcs.cdelt = [-scale_deg, scale_deg]
    return wcs


def _angle_per_pixel(pixel_scale):
    """Validate a user pixel scale (angle, or angle per pixel) and return it in degrees."""
    q = u.Quantity(pixel_scale)
    if q.unit.is_equivalent(u.deg / u.pix):
        q = q * u.pix
    if not q.unit.is_equivalent(u.deg):
        raise ValueError(f"pixel_scale must be an angle per pixel (e.g. 0.5 * u.arcsec), got {pixel_scale!r}")
    if not np.isfinite(q.value) or q.value <= 0:
        raise ValueError(f"pixel_scale must be positive and finite, got {pixel_scale!r}")
    return q.to_value(u.deg)


def _header_value(header, key):
    value = header.get(key) if header is not None else None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) and value > 0 else None


def _grid(meta, shape, image_header, params_header, pixel_scale, label):
    """Pixel scales (physical, angular) into ``meta``; return the nominal WCS or None."""
    nx = shape[1]
    pix_kpc = _header_value(image_header, "CD1_1") or _header_value(image_header, "CDELT1")
    linear_fov = _header_value(params_header, "linear_fov")
    if pix_kpc is None and linear_fov is not None:
        pix_kpc = linear_fov / nx
    if pix_kpc is not None:
        meta["pixel_scale_kpc"] = pix_kpc
    fov = _header_value(params_header, "FOV")
    dist = _header_value(params_header, "cameradist")
    if dist is not None:
        meta["camera_distance_kpc"] = dist
    if pixel_scale is not None:
        scale_deg, source = _angle_per_pixel(pixel_scale), "pixel_scale given by the caller"
    elif fov is not None:
        scale_deg, source = np.degrees(fov / nx), "camera FOV / npix"
    elif pix_kpc is not None and dist is not None:
        scale_deg, source = np.degrees(pix_kpc / dist), "pixel size in kpc / camera distance"
    else:
        warnings.warn(
            f"{label}: no angular pixel scale (no FOV, no cameradist and no pixel_scale=); "
            "the stack has no WCS",
            AstropyUserWarning,
            stacklevel=4,
        )
        meta["wcs_note"] = "no WCS: the file gives no angular pixel scale"
        return None
    meta["pixel_scale_arcsec"] = scale_deg * 3600.0
    meta["wcs_note"] = (
        f"nominal local TAN WCS centred on RA={NOMINAL_POSITION[0]}, Dec={NOMINAL_POSITION[1]} deg "
        f"(simulated galaxy, no real sky position); pixel scale from {source}"
    )
    return _nominal_wcs(shape, scale_deg)


def _subhalo_id(path: Path):
    match = re.search(r"(?:broadband_(?:rest_)?|id_|subhalo_?)(\d+)", path.name)
    return int(match.group(1)) if match else None


def _make_stack(images, *, wcs, unit, meta, label):
    """Wrap the images into a BandStack (which masks non-finite pixels, with a warning)."""
    from ..stack import BandStack  # imported here: stack imports nothing from datasets

    try:
        return BandStack.from_arrays(images, wcs=wcs, unit=unit, meta=meta)
    except ValueError as exc:  # e.g. an all-zero image
        raise DataFormatError(f"{label}: {exc}") from exc


def _camera_hdu_name(camera, scattering):
    return f"CAMERA{camera}-BROADBAND" + ("" if scattering else "-NONSCATTER")


def _cameras_in(hdul, scattering):
    suffix = "" if scattering else "-NONSCATTER"
    pattern = re.compile(rf"^CAMERA(\d+)-BROADBAND{suffix}$", re.IGNORECASE)
    return sorted(int(m.group(1)) for m in (pattern.match(h.name) for h in hdul) if m)


def _check_camera(camera):
    if isinstance(camera, bool) or not isinstance(camera, (int, np.integer)):
        raise TypeError(f"camera must be an integer, got {type(camera).__name__}")
    if camera < 0:
        raise ValueError(f"camera must be >= 0, got {camera}")
    return int(camera)


def _read_open(hdul, path, *, camera, bands, scattering, pixel_scale):
    camera = _check_camera(camera)
    filters, lam = _filter_table(hdul, path)
    chosen = _select_bands(filters, lam, bands, path)
    hdu_name = _camera_hdu_name(camera, scattering)
    if hdu_name not in hdul:
        cams = _cameras_in(hdul, scattering)
        raise DataFormatError(
            f"{path}: missing HDU {hdu_name!r} (cameras with that HDU: "
            f"{', '.join(map(str, cams)) if cams else 'none'})"
        )
    hdu = hdul[hdu_name]
    shape = hdu.shape
    if len(shape) != 3:
        raise DataFormatError(
            f"{path}: HDU {hdu_name!r} should hold an (n_filter, ny, nx) cube, found shape {shape}"
        )
    if shape[0] != len(filters):
        raise DataFormatError(
            f"{path}: HDU {hdu_name!r} has {shape[0]} image planes but FILTERS lists {len(filters)} filters"
        )
    label = f"{path} camera {camera}"
    images = {name: read_section(hdu, index, path) for name, (index, _fname) in chosen.items()}
    unit_text = next((hdu.header[k] for k in _UNIT_KEYS if k in hdu.header), None)
    unit = _parse_unit(unit_text, label)
    params_name = f"CAMERA{camera}-PARAMETERS"
    params_header = hdul[params_name].header if params_name in hdul else None
    meta = {
        "source": "Illustris-1 broadband mock (Torrey et al. 2015)",
        "file": str(path),
        "subhalo": _subhalo_id(path),
        "camera": camera,
        "hdu": hdu_name,
        "scattering": bool(scattering),
        "filters": {name: fname for name, (_i, fname) in chosen.items()},
        "unit_source": "file header" if unit is not None else _ASSUMED_UNIT,
    }
    if lam is not None:
        meta["lambda_eff_nm"] = {name: float(lam[i].value) for name, (i, _f) in chosen.items()}
    for key in ("theta", "phi"):
        value = params_header.get(key) if params_header is not None else None
        if value is not None:
            meta[f"camera_{key}"] = value
    for header in [hdul["BROADBAND"].header] if "BROADBAND" in hdul else []:
        if "REDSHIFT" in header:
            meta["redshift"] = header["REDSHIFT"]
    wcs = _grid(meta, shape[1:], hdu.header, params_header, pixel_scale, label)
    return _make_stack(images, wcs=wcs, unit=unit or SUNRISE_UNIT, meta=meta, label=label)


def read_illustris_broadband(path, *, camera=0, bands=None, scattering=False, pixel_scale=None):
    """Read one camera of an Illustris ``broadband_<subhaloID>.fits`` file.

    Parameters
    ----------
    path : str or os.PathLike
        The Sunrise broadband FITS file.
    camera : int
        Camera (viewing angle) number; Illustris-1 mocks have cameras 0-3.
    bands : str or sequence of str, optional
        Bands to read (registry names or aliases).  Default: every GALEX,
        SDSS and 2MASS band the FILTERS table holds.
    scattering : bool
        Read ``CAMERA<i>-BROADBAND`` instead of the default
        ``CAMERA<i>-BROADBAND-NONSCATTER``.
    pixel_scale : `~astropy.units.Quantity`, optional
        Angular pixel scale for the nominal WCS, overriding the file's.

    Returns
    -------
    `~bandsynth.stack.BandStack`
        Images in the file's unit (Sunrise: W m^-3 sr^-1), on a nominal TAN
        WCS (see the module notes); ``meta`` records the file, subhalo, camera,
        filter names, effective wavelengths, pixel scales and redshift.

    Raises
    ------
    DataFormatError
        Truncated or corrupt file, missing FILTERS or camera HDU, a requested
        band not in the file, or a cube that does not match the filter table.
    """
    path = as_path(path)
    with open_fits(path) as hdul:
        return _read_open(
            hdul, path, camera=camera, bands=bands, scattering=scattering, pixel_scale=pixel_scale
        )


def iter_illustris(folder, *, cameras=None, bands=None, scattering=False, pixel_scale=None,
                   pattern="broadband_*.fits", errors="raise"):
    """Iterate over the files and cameras of a folder of Illustris broadband FITS files.

    Files are visited in subhalo order, cameras in number order.

    Parameters
    ----------
    folder : str or os.PathLike
    cameras : int or sequence of int, optional
        Cameras to read; default every camera each file holds.
    bands, scattering, pixel_scale
        As for :func:`read_illustris_broadband`.
    pattern : str
        Glob pattern of the files inside ``folder``.
    errors : {"raise", "warn", "yield"}
        What to do with a file that cannot be read: raise, warn
        (`~astropy.utils.exceptions.AstropyUserWarning`) and go on, or yield
        the exception in place of the stack.

    Yields
    ------
    IllustrisView
        ``(subhalo, camera, path, stack)``.
    """
    if errors not in ("raise", "warn", "yield"):
        raise ValueError(f"errors must be 'raise', 'warn' or 'yield', got {errors!r}")
    if not isinstance(folder, (str, os.PathLike)):
        raise TypeError(f"folder must be a path, got {type(folder).__name__}")
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder}: not a directory")
    if cameras is not None:
        cameras = [_check_camera(c) for c in ([cameras] if np.isscalar(cameras) else cameras)]

    def order(p):
        sub = _subhalo_id(p)
        return (sub is None, sub if sub is not None else 0, p.name)

    for path in sorted((p for p in folder.glob(pattern) if p.is_file()), key=order):
        subhalo = _subhalo_id(path)
        try:
            hdul = open_fits(path)
        except (DataFormatError, OSError) as exc:
            yield from _handle(errors, exc, IllustrisView(subhalo, None, path, exc))
            continue
        with hdul:
            wanted = cameras if cameras is not None else _cameras_in(hdul, scattering)
            if not wanted:
                exc = DataFormatError(
                    f"{path}: no {_camera_hdu_name('<i>', scattering)} HDU found"
                )
                yield from _handle(errors, exc, IllustrisView(subhalo, None, path, exc))
                continue
            for camera in wanted:
                try:
                    stack = _read_open(hdul, path, camera=camera, bands=bands,
                                       scattering=scattering, pixel_scale=pixel_scale)
                except DataFormatError as exc:
                    yield from _handle(errors, exc, IllustrisView(subhalo, camera, path, exc))
                    continue
                yield IllustrisView(subhalo, camera, path, stack)


def _handle(errors, exc, view):
    if errors == "raise":
        raise exc
    if errors == "warn":
        warnings.warn(f"skipped: {exc}", AstropyUserWarning, stacklevel=3)
        return
    yield view


def read_illustris_hdf5(paths_by_band, *, camera=0, pixel_scale=None):
    """Read the per-band HDF5 files served by the Illustris web API.

    Each file (``broadband.hdf5?band=<n>``) holds one band, with one 2-D
    dataset per camera (``camera0`` ... ``camera3``).  The files carry no band
    name, so the caller says which band each file is.

    Parameters
    ----------
    paths_by_band : mapping
        Band name (registry name or alias) -> path of its HDF5 file.
    camera : int
        Camera to read.
    pixel_scale : `~astropy.units.Quantity`, optional
        Angular pixel scale; with it the stack gets a nominal TAN WCS (the
        files give no scale themselves unless an attribute says so).

    Returns
    -------
    `~bandsynth.stack.BandStack`
        Each band's unit is taken from a ``unit``/``units``/``IMUNIT``/``BUNIT``
        attribute of its own file when present, else assumed to be the Sunrise
        unit (W m^-3 sr^-1); ``meta["unit_source"]`` says which (per band when
        the files differ).  Bands in different units are converted to one as
        `~bandsynth.stack.BandStack` converts them.

    Raises
    ------
    DataFormatError
        Unreadable or truncated file, no dataset for the camera, a dataset
        that is not one image, images of different shapes, or units the
        stack cannot convert to one (e.g. a surface brightness without
        ``pixel_scale``).
    """
    import h5py

    if not isinstance(paths_by_band, Mapping):
        raise TypeError(f"paths_by_band must be a mapping band -> path, got {type(paths_by_band).__name__}")
    if not paths_by_band:
        raise ValueError("paths_by_band is empty: give at least one band -> path")
    camera = _check_camera(camera)
    images, files, units, shapes = {}, {}, {}, {}
    for key, raw_path in paths_by_band.items():
        band = get_band(key)
        if band.name in images:
            raise ValueError(f"band {band.name!r} is given twice (as {key!r})")
        path = as_path(raw_path)
        data, unit_text = _read_hdf5_camera(h5py, path, camera, band.name)
        units[band.name] = _parse_unit(unit_text, f"{path}")
        images[band.name] = data
        files[band.name] = str(path)
        shapes[band.name] = data.shape
    _check_hdf5_shapes(files, shapes)
    # Each file's own unit, or Sunrise's where it states none: r's attribute said nothing of g's file.
    images = {b: image * (units[b] or SUNRISE_UNIT) for b, image in images.items()}
    first = next(iter(files.values()))
    meta = {
        "source": "Illustris-1 broadband mock, per-band HDF5 from the Illustris web API",
        "files": files,
        "subhalo": _subhalo_id(Path(first)),
        "camera": camera,
        "unit_source": _hdf5_unit_source(units),
    }
    wcs = _hdf5_wcs(next(iter(shapes.values())), pixel_scale, meta)
    return _make_stack(images, wcs=wcs, unit=None, meta=meta, label=", ".join(files.values()))


def _read_hdf5_camera(h5py, path, camera, band_name):
    """(2-D image, unit text or None) of camera ``camera`` in the per-band HDF5 file ``path``."""
    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        raise DataFormatError(f"{path}: not a readable HDF5 file ({exc})") from exc
    with fh:
        wanted = f"camera{camera}"
        name = next((k for k in fh.keys() if k.lower() == wanted), None)
        if name is None or not isinstance(fh[name], h5py.Dataset):
            present = ", ".join(fh.keys()) or "none"
            raise DataFormatError(
                f"{path}: no dataset {wanted!r} for band {band_name!r} (datasets present: {present})"
            )
        ds = fh[name]
        try:
            data = np.asarray(ds[()], dtype=float)
        except Exception as exc:
            raise DataFormatError(f"{path}: cannot read dataset {name!r} ({exc})") from exc
        attrs = {k.lower(): ds.attrs[k] for k in ds.attrs}
        attrs.update({k.lower(): fh.attrs[k] for k in fh.attrs if k.lower() not in attrs})
    while data.ndim > 2 and data.shape[0] == 1:
        data = data[0]
    if data.ndim != 2:
        raise DataFormatError(
            f"{path}: dataset {name!r} should be one 2-D image, found shape {data.shape}"
        )
    unit_text = next((attrs[k] for k in ("unit", "units", "imunit", "bunit") if k in attrs), None)
    if isinstance(unit_text, bytes):
        unit_text = unit_text.decode("ascii", "replace")
    return data, unit_text


def _check_hdf5_shapes(files, shapes):
    """Raise DataFormatError when the band files' images differ in shape."""
    if len(set(shapes.values())) > 1:
        desc = ", ".join(f"{files[b]} ({b}): {s[0]}x{s[1]}" for b, s in shapes.items())
        raise DataFormatError(f"inconsistent image shapes across the band files: {desc}")


def _hdf5_unit_source(units):
    """``meta["unit_source"]``: where the bands' units come from, per band when the files differ."""
    sources = {b: "file attribute" if unit is not None else _ASSUMED_UNIT for b, unit in units.items()}
    if len(set(sources.values())) == 1:
        return next(iter(sources.values()))
    return "per band: " + ", ".join(f"{b} {source}" for b, source in sources.items())


def _hdf5_wcs(shape, pixel_scale, meta):
    """Nominal TAN WCS for the given pixel scale (or None without one); notes it in ``meta``."""
    if pixel_scale is not None:
        scale_deg = _angle_per_pixel(pixel_scale)
        meta["pixel_scale_arcsec"] = scale_deg * 3600.0
        meta["wcs_note"] = (
            f"nominal local TAN WCS centred on RA={NOMINAL_POSITION[0]}, Dec={NOMINAL_POSITION[1]} deg "
            "(simulated galaxy, no real sky position); pixel scale given by the caller"
        )
        wcs = _nominal_wcs(shape, scale_deg)
    else:
        meta["wcs_note"] = "no WCS: the HDF5 files give no angular pixel scale (pass pixel_scale=)"
        wcs = None
    return wcs
