"""The built-in mock universe: paired multi-band galaxy images with known truth.

Each galaxy is built from physically motivated parts, deterministically from
one integer seed:

* a Sérsic bulge, an exponential disk seen at some inclination and position
  angle, logarithmic spiral arms (m = 2-4) modulating the disk, compact
  star-forming clumps along the arms, optionally a bar and a companion;
* stars of six ages (5 Myr to 10 Gyr).  Part of every component's light is a
  smooth profile and part is many small "star particles", as in the Illustris
  mock images: young particles are few and bright, old ones many and faint,
  so every band gets its own lumpy structure;
* a stellar-population spectrum per age -- a mixture of blackbodies (main
  sequence up to the turn-off temperature, giants, a variable UV upturn for
  old stars, metal line blanketing in the UV) -- integrated through each
  band's response (:meth:`bandsynth.bands.Band.transmission`); ages and
  metallicities scatter from galaxy to galaxy;
* a dust screen following the disk (and a lane when seen edge-on) with a
  Calzetti et al. (2000) attenuation curve, strongest in the UV;
* a population drawn by specific star-formation rate: ellipticals, spirals,
  irregular/starburst galaxies and edge-on disks.

This is the ``"default"`` *family*.  Other families (:data:`FAMILIES`, chosen with
``family=`` in :func:`make_galaxy` and :func:`make_dataset`) build the same kind of
galaxies with other physics -- SMC-bar or Milky-Way dust curves, nebular emission
lines, and in ``"broad"`` every choice varying from galaxy to galaxy (dust curves,
lines, AGN, IMF slope, metallicity spread, post-starbursts, clump luminosity
function, bars), and ``"bc03"`` taking the stellar spectra from Bruzual & Charlot
(2003) -- so that a model can be tested on physics it was not trained on
(``benchmarks/cross_family.py``).

Several views (like the Illustris cameras) show the same intrinsic galaxy --
the same star particles and dust clouds -- from different directions.
``mode="ideal"`` (Illustris-like) blurs every band with one common Gaussian
PSF and adds no noise.  The survey layer (:func:`observe_galaxy`, or
``make_galaxy(..., survey=...)``) renders each band as a named survey observes
it (:data:`SURVEYS`: native pixel scale, PSF, depth, sky residual, masked
pixels), with the galaxy at a realistic magnitude and size among neighbours and
foreground stars, and brings the bands onto one grid with
`BandStack.reproject <bandsynth.stack.BandStack.reproject>`, keeping the
noise-free truth on the same grid; with ``redshift=True`` it observes each galaxy
and its neighbours at redshifts drawn from their magnitudes.  ``mode="survey"`` without a survey is the
simple survey mode of earlier versions: each band's PSF FWHM from the band
registry (Moffat profile, beta = 3), sky and Poisson noise at the depth of
:data:`SURVEY_DEPTHS` on the common grid.
Images are in nanomaggies (:data:`bandsynth.units.nanomaggy`) with a TAN WCS.

Rendering is fast (about 100 galaxies per second and core in 13 bands at
128x128): each component's image is made once per view -- analytic profiles
sampled as pixel averages, star particles deposited with cloud-in-cell
weights -- and every band is a weighted sum of these few images with weights
from the spectra, times the band's dust transmission.  In ideal mode the
common PSF, being linear, is applied to the particle images before they are
summed (the smooth profiles are blurred too when the PSF is wider than 2
pixels) and the dust screen multiplies the result; in survey mode each band
is attenuated first and then convolved with its own PSF.

Examples
--------
>>> from bandsynth.datasets.mock import render_galaxy
>>> images, uncertainty, meta = render_galaxy(7, bands=["NUV", "r", "Ks"], size=32)
>>> sorted(images), images["r"].shape, images["r"].dtype
(['Ks', 'NUV', 'r'], (32, 32), dtype('float32'))
>>> meta["galaxy_class"] in ("elliptical", "spiral", "irregular", "edge-on")
True

Modules
-------
``spectra``
    Stellar-population spectra, band integration, the dust curve.
``dust``
    The dust curves of the families: :func:`attenuation_curve`.
``families``
    The physics families: :class:`Family`, :data:`FAMILIES`, :func:`get_family`.
``population``
    One galaxy's intrinsic parameters from a seed (the population by sSFR).
``rendering``
    :func:`render_galaxy`: components, star particles, dust, PSF and noise.
``universe``
    :func:`make_galaxy`, :func:`make_dataset`, :class:`MockDataset`, :func:`split_by_galaxy`.
``surveys``
    Survey presets: :class:`SurveyBand`, :data:`SURVEYS`, :data:`SURVEY_PRESETS`.
``field``
    The galaxy's magnitude and size, neighbours and foreground stars of the survey layer.
``observing``
    The survey layer: :func:`observe_galaxy`, :class:`SurveyObservation`, :func:`psf_image`.
"""

from .dust import DUST_LAWS, attenuation_curve
from .families import FAMILIES, Family, get_family
from .observing import SurveyObservation, observe_galaxy, psf_image
from .population import GALAXY_CLASSES, galaxy_seed
from .rendering import DEFAULT_BANDS, DEFAULT_IDEAL_PSF_FWHM, DEFAULT_PIXEL_SCALE, SURVEY_DEPTHS, render_galaxy
from .spectra import (
    AGE_BINS,
    MAX_REDSHIFT,
    STELLAR_SPECTRA,
    calzetti_k,
    component_fluxes,
    line_band_fluxes,
    population_band_fluxes,
    population_sed,
    rest_wavelength_grid,
    sed_band_fluxes,
    star_band_fluxes,
)
from .surveys import SURVEY_PRESETS, SURVEYS, SurveyBand, resolve_survey, survey_band
from .universe import MockDataset, make_dataset, make_galaxy, split_by_galaxy

__all__ = [
    "make_galaxy",
    "make_dataset",
    "FAMILIES",
    "Family",
    "get_family",
    "attenuation_curve",
    "DUST_LAWS",
    "observe_galaxy",
    "SurveyObservation",
    "psf_image",
    "SurveyBand",
    "SURVEYS",
    "SURVEY_PRESETS",
    "survey_band",
    "resolve_survey",
    "star_band_fluxes",
    "render_galaxy",
    "galaxy_seed",
    "split_by_galaxy",
    "MockDataset",
    "population_sed",
    "population_band_fluxes",
    "component_fluxes",
    "calzetti_k",
    "sed_band_fluxes",
    "line_band_fluxes",
    "GALAXY_CLASSES",
    "AGE_BINS",
    "MAX_REDSHIFT",
    "STELLAR_SPECTRA",
    "rest_wavelength_grid",
    "DEFAULT_BANDS",
    "DEFAULT_PIXEL_SCALE",
    "DEFAULT_IDEAL_PSF_FWHM",
    "SURVEY_DEPTHS",
]
