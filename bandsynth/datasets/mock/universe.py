"""Mock galaxies and data sets: :func:`make_galaxy` (a `~bandsynth.BandStack`),
:func:`make_dataset` (an in-memory :class:`MockDataset`) and :func:`split_by_galaxy`."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ...bands import sort_bands
from ...units import format_unit, nanomaggy
from ..base import ImageDataset, build_manifest, progress_bar, tan_wcs
from .observing import check_mag_range, check_offset_probability, observe_galaxy
from .population import galaxy_seed, stratified_log_ssfr
from .rendering import DEFAULT_BANDS, DEFAULT_PIXEL_SCALE, check_size, positive, render_galaxy
from .families import get_family
from .surveys import resolve_survey

__all__ = ["make_galaxy", "make_dataset", "MockDataset", "split_by_galaxy"]


# ----------------------------------------------------------------------------------------------
# Public constructors
# ----------------------------------------------------------------------------------------------
def make_galaxy(seed, *, mode=None, bands=None, size=128, pixel_scale=None, view=0, psf_fwhm=None,
                depth_offset=0.0, dust=True, log_ssfr=None, galaxy_class=None, survey=None, family="default"):
    """One view of one mock galaxy as a :class:`~bandsynth.stack.BandStack`.

    Parameters
    ----------
    seed : int
        Identifies the galaxy (the same seed gives the same galaxy in every
        mode, band set and view); it is also its ``galaxy_id``.
    mode : {"ideal", "survey"}, optional
        ``"ideal"`` (the default without ``survey``): one common Gaussian PSF
        (``psf_fwhm``), no noise, the galaxy filling the stamp -- the paper's
        Illustris-like images.
        ``"survey"`` (the default with ``survey``): with ``survey`` given, the
        survey layer (:func:`observe_galaxy`): each band as that survey observes
        it, reprojected onto the common grid.  Without ``survey``, the simple
        survey mode of earlier versions: each band's registry PSF (Moffat,
        beta = 3), sky and Poisson noise at the depths of :data:`SURVEY_DEPTHS`
        shifted by ``depth_offset`` magnitudes, on the common grid.
    survey : str or mapping, optional
        Survey preset (``"kids_viking"``, ``"galex_sdss_2mass"``, ...), survey name
        (``"HSC"``) or mapping band -> survey (``{"NUV": "GALEX", "r": "SDSS",
        "Ks": "2MASS"}``): see :func:`observe_galaxy`, which also returns the
        noise-free truth and the native images.
    bands : list of str, optional
        Bands to render (default: :data:`DEFAULT_BANDS`, the 13 bands FUV to Ks of the paper).
    size : int
        Stamp width and height in pixels.  Galaxies are drawn to fill most of
        the stamp: their angular size scales with ``size * 0.262"``.
    pixel_scale : float, optional
        Arcsec per pixel (default :data:`DEFAULT_PIXEL_SCALE`).
    view : int
        Camera: views share the intrinsic galaxy (star particles, spectra)
        and differ in inclination and position angle.
    psf_fwhm : float, optional
        FWHM (arcsec) of the common PSF in ideal mode (default :data:`DEFAULT_IDEAL_PSF_FWHM`).
    depth_offset : float
        Survey mode: magnitudes added to every band's depth (> 0 is deeper).
    dust : bool
        Apply the dust screen.
    log_ssfr : float, optional
        Force log10 of the specific star-formation rate (1/yr) instead of drawing it.
    galaxy_class : str, optional
        Force the class (one of :data:`GALAXY_CLASSES`).
    family : str
        The physics family (:data:`FAMILIES`): ``"default"`` (the universe of
        earlier versions, unchanged pixel for pixel), ``"smc_dust"``,
        ``"mw_dust"``, ``"nebular"`` or ``"broad"`` (every physics choice varies).
        The same seed gives the same galaxy structure in every family as far as
        the family's physics allows.

    Returns
    -------
    BandStack
        Images in nanomaggies with a TAN WCS; in survey mode with a
        ``StdDevUncertainty``.  ``stack.meta`` holds the truth: ``galaxy_id``,
        ``view``, ``galaxy_class``, ``log_ssfr``, ``ssfr``, ``bt_r`` (bulge
        share of the r-band light), ``bt_mass``, ``inclination``,
        ``position_angle``, ``components`` (structural parameters),
        ``populations`` (ages, metallicities, UV upturn, r-band flux per
        component and age), ``flux_total`` (whole-plane flux per band without
        dust, from the spectra; :func:`component_fluxes` splits it by
        component), ``in_stamp_fraction`` (share of ``flux_total`` falling on
        the stamp, without dust) and ``flux_stamp`` (flux on the stamp after
        dust); in a non-default family also ``family`` and ``physics`` (the
        galaxy's dust curve, line strengths, AGN, IMF slope, ...).

    Examples
    --------
    >>> stack = make_galaxy(11, bands=["NUV", "r", "K"], size=32)
    >>> stack.names
    ('NUV', 'r', 'Ks')
    >>> stack.meta["galaxy_id"]
    11
    >>> kids = make_galaxy(11, survey={"g": "KiDS", "r": "KiDS", "Z": "VIKING"}, size=32)
    >>> kids.names, kids["KiDS_r"].mask is not None
    (('KiDS_g', 'KiDS_r', 'VISTA_Z'), True)
    >>> smc = make_galaxy(11, bands=["NUV", "r", "K"], size=32, family="smc_dust")
    >>> smc.meta["family"], smc.meta["physics"]["dust_law"]
    ('smc_dust', 'smc_bar')
    """
    mode = _check_mode(mode, survey, psf_fwhm)
    get_family(family)
    if survey is not None:
        return observe_galaxy(seed, survey, bands=bands, size=size, pixel_scale=pixel_scale, view=view,
                              depth_offset=depth_offset, dust=dust, log_ssfr=log_ssfr,
                              galaxy_class=galaxy_class, family=family).observed
    images, uncertainty, meta = render_galaxy(
        seed, view=view, mode=mode, bands=bands, size=size, pixel_scale=pixel_scale, psf_fwhm=psf_fwhm,
        depth_offset=depth_offset, dust=dust, log_ssfr=log_ssfr, galaxy_class=galaxy_class, family=family,
    )
    return _to_stack(images, uncertainty, meta)


def _check_mode(mode, survey, psf_fwhm):
    """The rendering mode: "ideal" or "survey" (the default with a ``survey``)."""
    if mode is None:
        mode = "ideal" if survey is None else "survey"
    if mode not in ("ideal", "survey"):
        raise ValueError(f"mode must be 'ideal' or 'survey', got {mode!r}")
    if survey is not None and mode == "ideal":
        raise ValueError("survey= renders each band as a survey observes it; it cannot be combined with "
                         "mode='ideal' (leave mode out or give mode='survey')")
    if survey is not None and psf_fwhm is not None:
        raise ValueError("psf_fwhm is the common PSF of mode='ideal'; with survey= each band has its survey's PSF")
    return mode


def _to_stack(images, uncertainty, meta):
    from ...stack import BandStack

    shape = next(iter(images.values())).shape
    wcs = tan_wcs(meta["ra"], meta["dec"], meta["pixel_scale"], shape)
    return BandStack.from_arrays(images, wcs=wcs, unit=nanomaggy, uncertainty=uncertainty, meta=meta)


def split_by_galaxy(log_ssfr, fractions=(0.8, 0.1, 0.1), *, seed=0):
    """Assign each galaxy to "train"/"validation"/"test", stratified by sSFR.

    Galaxies are ordered by sSFR and the validation and test galaxies are
    picked systematically along that order (random offset), so every split
    spans the whole sSFR range.  Views of one galaxy share its split.

    Parameters
    ----------
    log_ssfr : array-like
        log10 specific star-formation rate of each galaxy.
    fractions : tuple of float
        Fractions of galaxies in the train, validation and test splits (sum 1).
    seed : int
        Seed of the random offset.

    Returns
    -------
    splits : ndarray of str
        "train", "validation" or "test" for each galaxy.

    Examples
    --------
    >>> s = split_by_galaxy(np.linspace(-12, -9, 10), (0.6, 0.2, 0.2), seed=1)
    >>> sorted(s.tolist()).count("train"), sorted(s.tolist()).count("test")
    (6, 2)
    """
    log_ssfr = np.asarray(log_ssfr, dtype=float)
    fractions = np.asarray(fractions, dtype=float)
    if fractions.shape != (3,) or np.any(fractions < 0) or not np.isclose(fractions.sum(), 1.0):
        raise ValueError(f"split fractions must be three numbers >= 0 summing to 1, got {fractions.tolist()}")
    n = log_ssfr.size
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 4]))
    labels = np.full(n, "train", dtype="<U10")
    order = np.argsort(log_ssfr, kind="stable")
    free = list(order)
    for name, frac in (("validation", fractions[1]), ("test", fractions[2])):
        k = int(round(frac * n))
        if frac > 0 and k == 0 and n >= 3:
            k = 1
        k = min(k, len(free))
        if k == 0:
            continue
        picks = np.floor((np.arange(k) + rng.random()) * len(free) / k).astype(int)
        chosen = [free[i] for i in picks]
        labels[chosen] = name
        chosen_set = set(chosen)
        free = [g for g in free if g not in chosen_set]
    return labels


def make_dataset(n, *, seed=0, mode=None, bands=None, size=128, pixel_scale=None, views=1, psf_fwhm=None,
                 depth_offset=0.0, dust=True, stratify=True, split_fractions=(0.8, 0.1, 0.1), progress=False,
                 survey=None, family="default", r_mag_range=None, redshift=False, grid_offsets=0.0):
    """An in-memory data set of ``n`` mock galaxies, ``views`` images each.

    Image ``i`` is view ``i % views`` of galaxy ``i // views``; galaxy ``g``
    is ``make_galaxy(galaxy_seed(seed, g), log_ssfr=manifest["log_ssfr"][i], ...)``.
    With ``stratify`` the sSFRs are a Latin-hypercube draw from the
    population (every sSFR quantile represented).  Splits are by galaxy,
    stratified by sSFR (:func:`split_by_galaxy`).

    Parameters
    ----------
    n : int
        Number of galaxies.
    seed : int
        Seed of the data set (galaxy ``g`` is ``galaxy_seed(seed, g)``).
    mode, bands, size, pixel_scale, psf_fwhm, depth_offset, dust, survey, family
        As for :func:`make_galaxy`.  A non-default ``family`` is recorded in the
        manifest's meta (``info["family"]``), so that a model card can rebuild the
        data set.  With ``survey`` the data set also holds the
        noise-free truth (:meth:`MockDataset.truth_cube`) and the masks
        (:meth:`MockDataset.mask_cube`) of every band.
    r_mag_range : tuple of float, optional
        With ``survey``: draw the galaxies' r magnitudes in this (bright, faint) range
        (see :func:`observe_galaxy`).
    redshift : bool
        With ``survey``: observe every galaxy and its neighbours at a redshift drawn from
        its r magnitude (see :func:`observe_galaxy`); recorded in the manifest's meta.
    grid_offsets : float
        With ``survey``: the probability that a band's native grid is offset from the
        common grid by a random fraction of a pixel (see :func:`observe_galaxy`), so that
        it is interpolated onto the grid as a user's would be; recorded in the manifest's
        meta when not 0.
    views : int
        Images (camera directions) per galaxy.
    stratify : bool
        Draw the sSFRs as a Latin hypercube of the population.
    split_fractions : tuple of float
        Fractions of galaxies in the train, validation and test splits.
    progress : bool
        Show a progress bar.

    Returns
    -------
    MockDataset
        Same interface as :func:`bandsynth.datasets.open_dataset`:
        ``bands``, ``manifest``, ``len()``, ``cube(band)``, ``indices(split)``, ``stack(i)``.

    Examples
    --------
    >>> ds = make_dataset(4, seed=1, bands=["g", "r"], size=32, views=2)
    >>> len(ds), ds.cube("r").shape
    (8, (8, 32, 32))
    >>> set(ds.manifest["galaxy_id"][ds.indices("train")]).isdisjoint(ds.manifest["galaxy_id"][ds.indices("test")])
    True
    """
    plan = MockPlan(n, seed=seed, mode=mode, bands=bands, size=size, pixel_scale=pixel_scale, views=views,
                     psf_fwhm=psf_fwhm, depth_offset=depth_offset, dust=dust, stratify=stratify,
                     split_fractions=split_fractions, survey=survey, family=family, r_mag_range=r_mag_range,
                     redshift=redshift, grid_offsets=grid_offsets)
    shape = (plan.n_images, plan.size, plan.size)

    def empty(dtype=np.float32):
        return {b.name: np.empty(shape, dtype=dtype) for b in plan.bands}

    cubes = empty()
    uncert = empty() if plan.mode == "survey" else None
    truth, masks = (empty(), empty(bool)) if plan.survey is not None else (None, None)
    metas = []
    for idx, images, unc, meta, extra in progress_bar(plan.render(with_truth=True), progress, "mock galaxies",
                                                      plan.n_images):
        for name, im in images.items():
            cubes[name][idx] = im
            if uncert is not None:
                uncert[name][idx] = unc[name]
            if extra is not None:
                truth[name][idx] = extra["truth"][name]
                masks[name][idx] = extra["mask"][name]
        metas.append(meta)
    plan.assign_splits(metas)
    manifest = build_manifest(metas, plan.bands, info=plan.info(metas))
    return MockDataset(cubes, manifest, uncertainty=uncert, metas=metas, truth=truth, mask=masks)


class MockPlan:
    """Validated recipe of a mock data set; renders its images one at a time."""

    def __init__(self, n, *, seed, mode, bands, size, pixel_scale, views, psf_fwhm, depth_offset, dust,
                 stratify, split_fractions, survey=None, family="default", r_mag_range=None, redshift=False,
                 grid_offsets=0.0):
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
            raise ValueError(f"n must be a positive integer number of galaxies, got {n!r}")
        if not isinstance(views, (int, np.integer)) or isinstance(views, bool) or views < 1:
            raise ValueError(f"views must be a positive integer, got {views!r}")
        mode = _check_mode(mode, survey, psf_fwhm)
        self.n, self.views, self.seed, self.mode = int(n), int(views), int(seed), mode
        self.survey = survey
        self.family = get_family(family)
        if not isinstance(family, str):
            raise TypeError(f"family must be a family name (str), got {type(family).__name__}")
        if r_mag_range is not None and survey is None:
            raise ValueError("r_mag_range sets the magnitudes of the survey layer; give survey= too")
        self.r_mag_range = check_mag_range(r_mag_range)
        if not isinstance(redshift, (bool, np.bool_)):
            raise TypeError(f"redshift must be True or False, got {redshift!r}")
        if redshift and survey is None:
            raise ValueError("redshift observes the galaxies of the survey layer at their redshifts; give survey= too")
        self.redshift = bool(redshift)
        self.grid_offsets = check_offset_probability(grid_offsets)
        if self.grid_offsets and survey is None:
            raise ValueError("grid_offsets offsets the native grids of the survey layer; give survey= too")
        if survey is None:
            self.bands = sort_bands(DEFAULT_BANDS if bands is None else [bands] if isinstance(bands, str) else bands)
        else:
            self.bands = sort_bands([sb.band for sb in resolve_survey(survey, bands)])
        self.size = check_size(size)
        self.pixel_scale = DEFAULT_PIXEL_SCALE if pixel_scale is None else positive("pixel_scale", pixel_scale)
        self.psf_fwhm, self.depth_offset, self.dust = psf_fwhm, float(depth_offset), bool(dust)
        self.stratify = bool(stratify)
        self.split_fractions = tuple(float(f) for f in split_fractions)
        split_by_galaxy(np.zeros(0), self.split_fractions)  # validate early
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 5]))
        self.log_ssfr = stratified_log_ssfr(self.n, rng) if self.stratify else [None] * self.n
        self.n_images = self.n * self.views

    def render(self, *, with_truth=False):
        """Yield ``(index, images, uncertainty, meta)`` per image (and the survey layer's
        ``{"truth": ..., "mask": ...}`` or None with ``with_truth``)."""
        for idx in range(self.n_images):
            g, v = divmod(idx, self.views)
            if self.survey is not None:
                obs = observe_galaxy(
                    galaxy_seed(self.seed, g), self.survey, size=self.size,
                    bands=None if isinstance(self.survey, Mapping) else [b.name for b in self.bands],  # its keys
                    pixel_scale=self.pixel_scale, view=v, depth_offset=self.depth_offset, dust=self.dust,
                    log_ssfr=self.log_ssfr[g], family=self.family.name, r_mag_range=self.r_mag_range,
                    redshift=self.redshift, grid_offsets=self.grid_offsets or None,
                )
                st, names = obs.observed, [b.name for b in self.bands]
                images = {b: st[b].data for b in names}
                unc = {b: st[b].uncertainty.array.astype(np.float32) for b in names}
                meta = dict(st.meta)
                meta["galaxy"] = g
                extra = {"truth": {b: obs.truth[b].data for b in names},
                         "mask": {b: (st[b].mask if st[b].mask is not None else np.zeros(st.shape, bool))
                                  for b in names}}
                yield (idx, images, unc, meta, extra) if with_truth else (idx, images, unc, meta)
                continue
            images, unc, meta = render_galaxy(
                galaxy_seed(self.seed, g), view=v, mode=self.mode, bands=self.bands, size=self.size,
                pixel_scale=self.pixel_scale, psf_fwhm=self.psf_fwhm, depth_offset=self.depth_offset,
                dust=self.dust, log_ssfr=self.log_ssfr[g], family=self.family.name,
            )
            meta["galaxy"] = g
            yield (idx, images, unc, meta, None) if with_truth else (idx, images, unc, meta)

    def assign_splits(self, metas):
        splits = split_by_galaxy([m["log_ssfr"] for m in metas[:: self.views]], self.split_fractions,
                                 seed=self.seed)
        for m in metas:
            m["split"] = str(splits[m["galaxy"]])

    def info(self, metas):
        return {
            "mode": self.mode, "seed": self.seed, "size": self.size, "views": self.views, "n_galaxies": self.n,
            "pixel_scale": self.pixel_scale, "psf_fwhm": metas[0]["psf_fwhm"], "unit": format_unit(nanomaggy),
            "depth_offset": self.depth_offset, "dust": self.dust, "stratify": self.stratify,
            "split_fractions": list(self.split_fractions), "source": "bandsynth.datasets.mock",
            **({} if self.survey is None else {"survey": _survey_label(self.survey)}),
            **({} if self.family.is_default else {"family": self.family.name}),
            **({} if self.r_mag_range is None else {"r_mag_range": list(self.r_mag_range)}),
            **({"redshift": True} if self.redshift else {}),
            **({"grid_offsets": self.grid_offsets} if self.grid_offsets else {}),
        }


def _survey_label(survey):
    """The ``survey`` argument as plain data (for the manifest's meta)."""
    return dict(survey) if not isinstance(survey, str) else survey


class MockDataset(ImageDataset):
    """An in-memory mock data set (the interface of :class:`bandsynth.datasets.store.StoredDataset`).

    Made by :func:`make_dataset`; :meth:`stack` carries each image's full truth metadata.

    Parameters
    ----------
    cubes : mapping of band name to ndarray
        Images of each band, shape ``(n_images, ny, nx)``.
    manifest : `~astropy.table.Table`
        One row per image (see `bandsynth.datasets.base.build_manifest`).
    uncertainty : mapping of band name to ndarray, optional
        1-sigma noise cubes (survey mode).
    metas : list of dict, optional
        Each image's full truth metadata.
    truth : mapping of band name to ndarray, optional
        Noise-free images on the same grid (survey layer).
    mask : mapping of band name to ndarray, optional
        Boolean masks of the images, `True` for a bad pixel (survey layer).
    """

    def __init__(self, cubes, manifest, *, uncertainty=None, metas=None, truth=None, mask=None):
        super().__init__(manifest)
        self._cubes = dict(cubes)
        self._uncert = None if uncertainty is None else dict(uncertainty)
        self._metas = metas
        self._truth = None if truth is None else dict(truth)
        self._mask = None if mask is None else dict(mask)
        self._check_cubes(self._cubes, self._uncert, source="mock data set")
        for kind, cubes_ in (("truth", self._truth), ("mask", self._mask)):
            if cubes_ is not None:
                self._check_cubes(cubes_, None, source=f"mock data set ({kind})")

    def _get_cube(self, name):
        return self._cubes[name]

    def _get_uncertainty(self, name):
        return None if self._uncert is None else self._uncert[name]

    def _get_truth(self, name):
        return None if self._truth is None else self._truth[name]

    def _get_mask(self, name):
        return None if self._mask is None else self._mask[name]

    def _image_meta(self, i):
        if self._metas is not None:
            return dict(self._metas[i])
        return super()._image_meta(i)
