"""Resampling the bands of a `~bandsynth.stack.BandStack` onto one pixel grid.

:func:`reproject_all` resamples images with the `reproject` package, keeping the
total flux of images in flux per pixel (``conserve_flux="auto"``) and returning one
record per resampled band (what `BandStack.reproject <bandsynth.stack.BandStack.reproject>`
stores in ``meta["reprojection"]``); :func:`check_grid` makes sure the bands of a stack
share one grid.  Most code uses `BandStack.reproject <bandsynth.stack.BandStack.reproject>`
or ``reproject_to=`` instead.
"""

from __future__ import annotations

import copy
import warnings

import astropy.units as u
import numpy as np
from astropy.utils.exceptions import AstropyUserWarning

from ._metadata import without_wcs_keywords
from .stack_io import BandImage
from .units import is_magnitude, pixel_area

__all__ = ["METHODS", "GRID_TOLERANCE", "check_grid", "describe_target", "grid_offset", "regrid",
           "reproject_all"]

#: Resampling methods: ``"auto"`` (`reproject.reproject_exact` onto larger pixels, `~reproject.reproject_interp`
#: elsewhere), or `reproject.reproject_interp`, `~reproject.reproject_exact`, `~reproject.reproject_adaptive`.
METHODS = ("auto", "interp", "exact", "adaptive")
# "auto" resamples exactly where the output pixels are larger than the input's by more than this (in area):
# interpolation samples such a grid between input pixels and misses or counts twice their light (SDSS r at 0.396"
# put on 1.5" pixels: a star's flux at 1.3" seeing changed by -24 % to +11 %, as it fell in its pixel), where the
# pixels' exact overlap keeps it;
# onto smaller pixels interpolation keeps the flux and gives smooth images where the overlap gives blocks.
_COARSER = 1.001
#: Two images share a pixel grid when their WCSs agree to this many pixels everywhere (`grid_offset`).
GRID_TOLERANCE = 0.01
# Reprojected pixels covered by less than this fraction of input pixels are masked.
_MIN_COVERAGE = 0.999

#: reproject_interp's orders by number, as it takes them (0 is also "nearest-neighbor", ...).
_ORDERS = {0: "nearest-neighbor", 1: "bilinear", 2: "biquadratic", 3: "bicubic"}


# ---------------------------------------------------------------------- grids
def describe_target(target):
    """How a reprojection target was asked for, as its records state it and a batch compares it.

    Parameters
    ----------
    target : str, `~bandsynth.bands.Band`, `~astropy.units.Quantity` or other
        A band (its registry name), a pixel scale, or a grid (header, WCS,
        ``(wcs, shape)``, NDData).

    Returns
    -------
    str
        The band's name, the pixel scale in arcsec (``"0.262 arcsec"``) or ``"a given grid"``.

    Examples
    --------
    >>> import astropy.units as u
    >>> describe_target("K"), describe_target(262 * u.mas), describe_target(None)
    ('Ks', '0.262 arcsec', 'a given grid')
    """
    from .bands import Band, get_band

    if isinstance(target, (str, Band)):
        return get_band(target).name
    if isinstance(target, u.Quantity) and target.unit.physical_type == "angle":
        return f"{target.to_value(u.arcsec):.6g} arcsec"
    return "a given grid"


def regrid(wcs, shape, pixel_scale):
    """The grid ``(wcs, shape)`` of the same field on square pixels of ``pixel_scale``.

    Centred where the grid ``(wcs, shape)`` is, in its orientation and projection
    (without distortion terms), its side scaled to cover the same field: what a model's
    pixel scale asks of images taken on other pixels.

    Parameters
    ----------
    wcs : `~astropy.wcs.WCS`
        A celestial WCS.
    shape : (int, int)
        ``(ny, nx)`` of its grid.
    pixel_scale : `~astropy.units.Quantity` or float
        The new pixels' side (an angle; a number is in arcsec).

    Returns
    -------
    wcs : `~astropy.wcs.WCS`
    shape : (int, int)

    Examples
    --------
    >>> from astropy.wcs import WCS
    >>> w = WCS(naxis=2)
    >>> w.wcs.ctype, w.wcs.cdelt = ["RA---TAN", "DEC--TAN"], [-0.2 / 3600, 0.2 / 3600]
    >>> w.wcs.crval, w.wcs.crpix = [150.0, 2.0], [128.5, 128.5]
    >>> new, shape = regrid(w, (256, 256), 0.262 * u.arcsec)
    >>> shape, [round(float(c) * 3600, 3) for c in new.wcs.cdelt]
    ((195, 195), [-0.262, 0.262])
    """
    from astropy.wcs.utils import proj_plane_pixel_scales

    scale = u.Quantity(pixel_scale, u.arcsec).to_value(u.deg)
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"reproject: a pixel scale must be a positive angle, got {pixel_scale!r}")
    celestial = wcs.celestial
    factors = np.asarray(proj_plane_pixel_scales(celestial), dtype=float) / scale  # per pixel axis; > 1: finer
    ny, nx = shape
    # inside the field: none masked
    new_shape = tuple(max(1, int(np.floor(n * f + 1e-6))) for n, f in ((ny, factors[1]), (nx, factors[0])))
    centre = celestial.pixel_to_world_values((nx - 1) / 2, (ny - 1) / 2)
    new = celestial.deepcopy()
    new.sip, new.wcs.ctype = None, [c.replace("-SIP", "") for c in new.wcs.ctype]
    # each pixel axis's column of the linear transformation scaled by its own factor: square pixels from
    # rectangular ones (one mean factor kept 0.3" x 0.5" pixels rectangular, 0.20" x 0.33" for 0.262")
    if new.wcs.has_cd():
        new.wcs.cd = new.wcs.cd / factors
    elif np.count_nonzero(new.wcs.get_pc() - np.diag(np.diag(new.wcs.get_pc()))) == 0:
        new.wcs.cdelt = new.wcs.cdelt / factors
    else:
        new.wcs.pc = new.wcs.get_pc() / factors
    new.wcs.crval = [float(c) for c in centre]
    new.wcs.crpix = [(new_shape[1] + 1) / 2, (new_shape[0] + 1) / 2]
    new.wcs.set()
    new.array_shape = new_shape
    return new, new_shape


def grid_offset(wcs_a, wcs_b, shape):
    """Largest distance, in pixels, between where two WCSs put the same sky points of a grid.

    Measured at the corners and the centre of an image of ``shape`` on ``wcs_a``; two
    images are on one pixel grid when it is at most `GRID_TOLERANCE`.

    Parameters
    ----------
    wcs_a, wcs_b : `~astropy.wcs.WCS`
    shape : tuple of int
        ``(ny, nx)`` of the images.

    Returns
    -------
    float
        The offset; inf if the WCSs cannot be compared (other frames or axes).

    Examples
    --------
    >>> from astropy.wcs import WCS
    >>> a = WCS(naxis=2)
    >>> a.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    >>> a.wcs.cdelt = [-1e-4, 1e-4]
    >>> b = a.deepcopy()
    >>> b.wcs.crpix = [3.0, 0.0]
    >>> round(grid_offset(a, b, (10, 10)), 6)
    3.0
    """
    ny, nx = shape
    x = np.array([0.0, nx - 1.0, 0.0, nx - 1.0, (nx - 1) / 2.0])
    y = np.array([0.0, 0.0, ny - 1.0, ny - 1.0, (ny - 1) / 2.0])
    try:
        world = wcs_a.pixel_to_world(x, y)
        if not isinstance(world, (list, tuple)):
            world = [world]
        xb, yb = wcs_b.world_to_pixel(*world)
    except Exception:  # any failure (different frames, axis types...) means "not the same grid"
        return np.inf
    offset = float(np.max(np.hypot(np.asarray(xb) - x, np.asarray(yb) - y)))
    return offset if np.isfinite(offset) else np.inf


def check_grid(built):
    """Make sure every band of ``built`` is on the pixel grid of the first.

    Bands share a grid when their shapes are equal and their WCSs put the same
    sky points within 0.01 pixel of each other (corners and centre); WCSs are
    compared only when the first band has one.

    Parameters
    ----------
    built : mapping of `~bandsynth.bands.Band` to `~bandsynth.stack_io.BandImage`
        The bands of a stack, the first one giving the grid.

    Raises
    ------
    ValueError
        If a band differs in shape or in WCS; the message says how to put the
        bands on one grid.
    """
    bands = list(built)
    first = bands[0]
    shape = built[first].shape
    different = [b for b in bands if built[b].shape != shape]

    def where(band, form=" ({!r})"):  # the file, where the band was read from one
        path = getattr(built[band], "path", None)
        return form.format(path) if path else ""

    if different:
        listing = ", ".join(f"{b.name} {built[b].shape}{where(b, ' in {!r}')}" for b in bands)
        onto = _finest(built)
        raise ValueError(
            f"bands have different shapes ({listing}); put them on one pixel grid first, e.g. "
            f"BandStack.from_fits(..., reproject_to={onto!r}), "
            f"BandStack.from_arrays(..., reproject_to={onto!r}) or BandStack.reproject"
        )
    ref = built[first].wcs
    for band in bands[1:]:
        if ref is None:
            break
        offset = grid_offset(ref, built[band].wcs, shape)
        if offset > GRID_TOLERANCE:
            raise ValueError(
                f"band {band.name!r}{where(band)} is not on the pixel grid of band {first.name!r}{where(first)} (its "
                f"WCS differs by up to {offset:.3g} pixels); reproject onto one grid, e.g. "
                f"reproject_to={_finest(built)!r} in "
                "BandStack.from_fits / BandStack.from_arrays, or BandStack.reproject"
            )


def _finest(built):
    """The band of the smallest pixels (the first one's where no WCS tells): the grid to suggest, since the
    coarser bands lose nothing on it and models are trained on their finest band's grid (NUV + Ks on Ks's)."""
    from astropy.wcs.utils import proj_plane_pixel_area

    def area(band):
        wcs = built[band].wcs
        return np.inf if wcs is None or not wcs.has_celestial else float(proj_plane_pixel_area(wcs.celestial))

    bands = list(built)
    return min(bands, key=lambda b: (area(b), bands.index(b))).name


# ---------------------------------------------------------------------- reprojection
def _is_surface_brightness(unit) -> bool:
    """Whether ``unit`` is per solid angle (its SI decomposition has rad**-2)."""
    try:
        dec = u.Unit(unit).decompose()
    except (u.UnitsError, ValueError):
        return False
    return any(base == u.rad and power < 0 for base, power in zip(dec.bases, dec.powers))


def reproject_all(images, wcs_out, shape_out, *, method, conserve_flux, kwargs, requested="a given grid"):
    """Resample every band; returns the new images and one record per band that moved.

    A band already on the output grid is kept as it is.  Output pixels not fully
    covered by the band's image, or touched by a masked pixel, are masked (with
    an `~astropy.utils.exceptions.AstropyUserWarning` for the uncovered ones);
    uncertainties are resampled as variances.

    Parameters
    ----------
    images : mapping of `~bandsynth.bands.Band` to `~bandsynth.stack_io.BandImage`
        The bands, each with a WCS.
    wcs_out : `~astropy.wcs.WCS`
        WCS of the output grid.
    shape_out : (int, int)
        Shape ``(ny, nx)`` of the output grid.
    method : {"auto", "interp", "exact", "adaptive"}
        Resampling function of the `reproject` package (see :data:`METHODS`); ``"auto"``
        chooses per band: ``"exact"`` onto larger pixels, ``"interp"`` onto others.
    conserve_flux : {"auto", True, False}
        Multiply images in flux per pixel by the ratio of output to input pixel
        area, so that total fluxes are kept; images in surface-brightness units
        (per solid angle) are never scaled; `False` never scales.
    kwargs : dict
        Further keyword arguments of the `reproject` function.
    requested : str, optional
        How the grid was asked for (`describe_target`), for the records.

    Returns
    -------
    images : dict of `~bandsynth.bands.Band` to `~bandsynth.stack_io.BandImage`
        Every band, on the output grid.
    records : list of dict
        One record per resampled band: ``band``, ``requested``, ``method``,
        (the one used), ``pixel_scale_in``/``pixel_scale_out`` (arcsec per pixel, for celestial
        WCSs), ``shape_out``, ``flux_scaled_by_area_ratio``, ``area_ratio``
        (output / input pixel area), ``subpixel_shift`` (how far the grid's centre falls from
        a whole input pixel), ``interpolation_offset`` (for a bilinear or exact resampling onto
        a shifted copy of the band's own grid, the fractions of an input pixel by which it moved,
        and how they drift across the grid; else None: `bandsynth.restored_noise`) and ``unit``.

    Raises
    ------
    ValueError
        Unknown ``method`` or ``conserve_flux``, a band without a WCS, a WCS
        whose pixel area cannot be measured, or a failure of `reproject`.
    """
    if conserve_flux not in ("auto", True, False):
        raise ValueError(f"reproject: conserve_flux must be 'auto', True or False; got {conserve_flux!r}")
    if method not in METHODS:
        raise ValueError(f"reproject: method must be one of {', '.join(METHODS)}; got {method!r}")
    if method == "auto" and set(kwargs) - {"parallel", "block_size"}:  # options of both functions pass
        raise ValueError(f"reproject: {', '.join(sorted(set(kwargs) - {'parallel', 'block_size'}))} given with "
                         "method='auto', which chooses reproject_exact or reproject_interp for each band; name the "
                         "method they belong to (e.g. method='interp')")
    built, records, uncovered = {}, [], {}
    target = None  # the target grid's pixel areas, measured once for every band (when a band moves)
    for band, im in images.items():
        if target is None and im.wcs is not None and not _on_grid(im, wcs_out, shape_out):
            target = (pixel_area(wcs_out, "target").value, _relative_areas(wcs_out, tuple(shape_out)))
        new, used = _reproject_image(band, im, wcs_out, shape_out, method=method, conserve_flux=conserve_flux,
                                     kwargs=kwargs, uncovered=uncovered, target=target)
        if new is not im:
            a_in, a_out = pixel_area(im.wcs, f"band {band.name!r}").value, target[0]
            scaled = conserve_flux is not False and not _is_surface_brightness(im.unit)
            records.append({
                "band": band.name, "requested": requested, "method": used,
                "pixel_scale_in": round(float(np.sqrt(a_in)) * 3600.0, 6),
                "pixel_scale_out": round(float(np.sqrt(a_out)) * 3600.0, 6),
                "shape_out": [int(n) for n in shape_out],
                "flux_scaled_by_area_ratio": bool(scaled),
                "area_ratio": float(a_out / a_in),
                "subpixel_shift": _subpixel_shift(im.wcs, wcs_out, shape_out),
                "interpolation_offset": _interpolation_offset(im.wcs, wcs_out, shape_out, method=used, kwargs=kwargs),
                "unit": str(im.unit),
            })
        built[band] = new
    for count, bands in uncovered.items():  # one warning for the bands of one footprint, not one per band
        warnings.warn(
            f"band{'s' if len(bands) > 1 else ''} {', '.join(repr(b) for b in bands)}: {count} pixel(s) of the "
            f"target grid are not (fully) covered by the band's image; they are masked",
            AstropyUserWarning,
            stacklevel=3,
        )
    return built, records


def _relative_areas(wcs, shape, *, step=32):
    """Each pixel's solid angle over `pixel_area`'s (the reference pixel's), where a distortion (SIP, TPV) makes it
    vary across the grid by more than 1e-4; else None.

    A flux-conserving resampling scales by the ratio of pixel areas; at the reference pixel alone, a cut-out
    far from its chip's reference pixel was scaled by the wrong area (3 % off for a SIP term of 1e-5).  The
    areas are measured every ``step`` pixels (distortions vary slowly), from the sky positions of each
    node's pixel corners, and interpolated linearly in between: no library gives a WCS's per-pixel area.
    """
    ny, nx = shape
    ys, xs = np.unique(np.r_[np.arange(0, ny, step), ny - 1]), np.unique(np.r_[np.arange(0, nx, step), nx - 1])
    gy, gx = np.meshgrid(ys.astype(float), xs.astype(float), indexing="ij")
    corners = [(-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5)]
    sky = [wcs.celestial.all_pix2world(gx + dx, gy + dy, 0) for dx, dy in corners]
    ra0, dec0 = sky[0]
    cos = np.cos(np.radians(dec0))
    px = [((ra - ra0 + 180.0) % 360.0 - 180.0) * cos for ra, _ in sky]  # local tangent-plane offsets [deg]
    py = [dec - dec0 for _, dec in sky]
    area = 0.5 * np.abs(sum(px[k] * py[(k + 1) % 4] - px[(k + 1) % 4] * py[k] for k in range(4)))
    relative = area / pixel_area(wcs).value
    if np.max(np.abs(relative - 1.0)) <= 1e-4:
        return None
    rows = np.stack([np.interp(np.arange(nx), xs, r) for r in relative])  # along x, then along y
    y = np.arange(ny)
    i = np.clip(np.searchsorted(ys, y, side="right") - 1, 0, len(ys) - 2)
    t = ((y - ys[i]) / (ys[i + 1] - ys[i]))[:, None]
    return rows[i] * (1.0 - t) + rows[i + 1] * t


def _bilinear_weight_squares(wcs_in, wcs_out, shape_out):
    """Σ w² of the bilinear weights with which each output pixel samples the input grid.

    Interpolation onto coarser pixels samples the input: an output pixel is ``Σ w n`` of
    the four input pixels around it, whose noise adds as ``Σ w² σ²`` (from 1/4 between
    pixel centres to 1 on one), and samples further apart than a pixel share no input
    pixel, so that is also the noise on larger scales.  Interpolating the variance map
    gives ``Σ w σ²``: up to four times too much.  On grids as fine or finer, neighbouring
    output pixels share input pixels and their noise is correlated: the interpolated
    variance then lies between the pixel-to-pixel scatter and the noise on larger scales
    (equal to the latter on a shifted grid of the same scale), and is left as it is --
    the shipped models' Monte Carlo calibrations were fitted with it.  reproject returns
    no weights, hence the positions from astropy's pixel-to-pixel transformation.
    """
    from astropy.wcs.utils import pixel_to_pixel

    ny, nx = shape_out
    factor = np.empty((ny, nx))
    xs = np.arange(nx, dtype=float)
    for y0 in range(0, ny, 256):  # in blocks of rows: a mosaic's coordinates are not held at once
        rows = np.arange(y0, min(ny, y0 + 256), dtype=float)
        gx, gy = np.meshgrid(xs, rows)
        x_in, y_in = pixel_to_pixel(wcs_out.celestial, wcs_in.celestial, gx, gy)
        fx, fy = x_in - np.floor(x_in), y_in - np.floor(y_in)
        factor[y0:y0 + len(rows)] = (fx**2 + (1 - fx) ** 2) * (fy**2 + (1 - fy) ** 2)
    return factor


def _subpixel_shift(wcs_in, wcs_out, shape_out):
    """How far from an input pixel's centre the output pixel nearest the grid's centre falls (0 to 0.5 pixel, per
    axis at most): a grid moved by whole pixels takes the input pixels as they are, one between them averages
    their noise."""
    from astropy.wcs.utils import pixel_to_pixel

    ny, nx = shape_out
    x, y = pixel_to_pixel(wcs_out.celestial, wcs_in.celestial, float(nx // 2), float(ny // 2))
    return round(float(max(abs(x - np.round(x)), abs(y - np.round(y)))), 4)


#: A grid counts as the band's own grid moved by a shift when, from output pixel to output pixel, the input position
#: moves by one input pixel to within this fraction (a rotation by up to 0.06 degree, a scale within 0.1 %): locally a
#: shift, which may drift slowly across the grid; and the drift is linear to within _AFFINE_OFFSET input pixels.
_SHIFT_GRADIENT = 1e-3
_AFFINE_OFFSET = 0.02


def _interpolation_offset(wcs_in, wcs_out, shape_out, *, method, kwargs):
    """How a resampling onto a shifted copy of the band's own grid weighs its input pixels, or None.

    Returns ``{"fractions": [fy, fx], "reference": [row, column], "gradient": [[dfy/drow, dfy/dcol], [dfx/drow,
    dfx/dcol]]}``: at the grid's centre pixel, ``reference`` pixels from the grid's reference pixel (CRPIX, which a
    cut-out moves with its pixels), each output pixel is ``1 - f`` of one input pixel and ``f`` of the next along
    each axis, and ``f`` drifts by ``gradient`` per output pixel (a slight rotation or scale).  None for other
    grids and for resamplings that weigh otherwise (higher interpolation orders, ``adaptive``).  A bilinear and an
    exact (area-weighted) resampling by a shift weigh alike."""
    from astropy.wcs.utils import pixel_to_pixel

    order = _ORDERS.get(kwargs.get("order", "bilinear"), kwargs.get("order", "bilinear"))
    if not (method == "exact" or (method == "interp" and order == "bilinear")):
        return None
    ny, nx = shape_out
    xs, ys = np.array([nx // 2, 0, nx - 1, 0, nx - 1], float), np.array([ny // 2, 0, 0, ny - 1, ny - 1], float)
    x_in, y_in = pixel_to_pixel(wcs_out.celestial, wcs_in.celestial, xs, ys)
    shifts = np.array([y_in - ys, x_in - xs])  # input position minus output position, per point
    if not np.all(np.isfinite(shifts)):
        return None
    # the drift of the shift across the grid, from its corners: d shift / d row, d shift / d column
    gradient = np.array([[(s[3] - s[1]) / max(ny - 1, 1), (s[2] - s[1]) / max(nx - 1, 1)] for s in shifts])
    affine = shifts[:, :1] + gradient @ np.array([ys - ys[0], xs - xs[0]])
    if np.abs(gradient).max() > _SHIFT_GRADIENT or np.abs(affine - shifts).max() > _AFFINE_OFFSET:
        return None
    crpix = np.asarray(wcs_out.celestial.wcs.crpix, dtype=float) - 1.0  # 0-based (x, y)
    return {"fractions": [round(float(f - np.floor(f)), 4) % 1.0 for f in shifts[:, 0]],  # 0.99999: a whole pixel
            "reference": [float(ys[0] - crpix[1]), float(xs[0] - crpix[0])],
            "gradient": [[float(g) for g in row] for row in gradient]}


def _on_grid(im, wcs_out, shape_out):
    """Whether ``im`` already lies on the grid ``(wcs_out, shape_out)`` (it is then not resampled)."""
    return im.shape == tuple(shape_out) and grid_offset(im.wcs, wcs_out, shape_out) <= GRID_TOLERANCE


def _reproject_image(band, im, wcs_out, shape_out, *, method, conserve_flux, kwargs, uncovered, target):
    """Resample one band onto ``(wcs_out, shape_out)`` with the reproject package; the number of target pixels
    its image does not cover goes into ``uncovered`` (``{count: [band names]}``).  ``target``: the grid's
    reference pixel area [deg²] and relative pixel areas (`_relative_areas`).  Returns the image and the method
    used (None for an image already on the grid)."""
    label = f"band {band.name!r}"
    if im.wcs is None:
        raise ValueError(f"{label} has no WCS; reprojection needs a WCS on every band (pass wcs=)")
    if _on_grid(im, wcs_out, shape_out):
        return im, None
    if is_magnitude(im.unit):  # a pixel's magnitude is no flux to share among pixels
        raise ValueError(f"{label} is in {im.unit}, which cannot be resampled: give the band in a flux unit "
                         "(e.g. unit='nanomaggy' when building the stack)")
    (a_out, rel_out), a_in = target, pixel_area(im.wcs, label).value
    if method == "auto":
        method = "exact" if a_out > a_in * _COARSER else "interp"
    import reproject

    func = {
        "interp": reproject.reproject_interp,
        "exact": reproject.reproject_exact,
        "adaptive": reproject.reproject_adaptive,
    }[method]

    def run(array, **extra):
        array = np.array(array, dtype=float)
        shape = tuple(shape_out) if array.ndim == 2 else (array.shape[0], *shape_out)
        try:
            return func((array, im.wcs), wcs_out, shape_out=shape, **{**kwargs, **extra})
        except (ValueError, TypeError) as err:
            raise ValueError(f"{label}: reproject_{method} failed: {err}") from err

    # data, variance and mask share a call where they are resampled alike (reproject broadcasts over the leading
    # axis: the coordinate transformation is computed once).  With interpolation the mask is resampled bilinearly
    # (any pixel a bad one touches is masked), and so is the variance above that order, whose negative weights
    # take it below zero beside a jump in the noise (its square root NaN on unmasked pixels)
    order = kwargs.get("order", "bilinear") if method == "interp" else None
    order = _ORDERS.get(order, order)
    conserve = conserve_flux is not False and not _is_surface_brightness(im.unit)
    # a distorted grid's pixels differ in area: flux per pixel over relative area is resampled, then scaled back
    rel_in = _relative_areas(im.wcs, im.shape) if conserve else None
    rel_in = 1.0 if rel_in is None else rel_in
    planes = {"data": im.data / rel_in}
    if im.uncertainty is not None:
        planes["variance"] = (np.asarray(im.uncertainty, dtype=float) / rel_in) ** 2
    if im.mask is not None and im.mask.any():
        planes["mask"] = im.mask.astype(float)
    bilinear = {"mask"} if order not in (None, "bilinear") else set()
    bilinear |= {"variance"} if order in ("biquadratic", "bicubic") else set()
    out = {}
    for names, extra in (([n for n in planes if n not in bilinear], {}),
                         ([n for n in planes if n in bilinear], {"order": "bilinear"})):
        if names:
            resampled, covered = run(np.stack([planes[n] for n in names]), **extra)
            out.update(zip(names, resampled))
            if names[0] == "data":  # the data's own coverage
                footprint = covered[0]
    data = out["data"]
    bad = ~np.isfinite(data)
    outside = footprint < _MIN_COVERAGE
    if outside.all():  # every pixel masked: refused, as an input whose every pixel is masked is
        raise ValueError(f"{label}: its image does not overlap the target grid (no pixel of the grid lies on it): "
                         "are the WCSs of the same field?")
    if outside.any():
        uncovered.setdefault(int(outside.sum()), []).append(band.name)
        bad |= outside
    if "mask" in out:
        bad |= ~(np.nan_to_num(out["mask"], nan=1.0) <= 1e-6)
    variance = out.get("variance")
    if variance is not None:
        if method in ("exact", "adaptive"):
            # an output pixel averages about a_out / a_in independent input pixels
            variance = variance * min(1.0, a_in / a_out)
        elif a_out > a_in and order == "bilinear":
            # (another order's noise averages less than the bilinear weights say: its variance is kept)
            variance = variance * _bilinear_weight_squares(im.wcs, wcs_out, shape_out)
    if conserve:
        ratio = a_out / a_in * (1.0 if rel_out is None else rel_out)
        data = data * ratio
        if variance is not None:
            variance = variance * ratio**2
    unc = None if variance is None else np.sqrt(variance)
    mask = bad if (bad.any() or im.mask is not None) else None
    return BandImage(data, im.unit, unc, mask, copy.deepcopy(wcs_out), without_wcs_keywords(im.meta)), method
