"""What a survey sees around a mock galaxy: its apparent magnitude and size, neighbours and stars.

The field of :func:`~bandsynth.datasets.mock.observe_galaxy` is drawn in sky
coordinates (arcsec from the galaxy's centre), the same in every band:

* the galaxy's r magnitude from galaxy counts (``dN/dm`` rising as ``10^(0.35 m)``
  between r = 15 and 21.5, so most galaxies are faint) and its half-light radius from a
  size-magnitude relation (``log10 R_e["] = 0.4 - 0.15 (r - 18)`` with 0.15 dex scatter,
  roughly that of SDSS and deeper surveys: Shen et al. 2003; van der Wel et al. 2014);
* neighbours: other mock galaxies, fainter than the galaxy (down to r = 24), with
  ``N(<r) = 20 * 10^(0.35 (r - 24))`` per arcmin^2 (the shape of deep r-band counts,
  e.g. Yasuda et al. 2001; Metcalfe et al. 2001), sizes from the same relation;
* redshifts (when asked for): log-normal about a median growing with the magnitude,
  ``log10 z_med = log10 0.12 + 0.18 (r - 17.7)`` with 0.15 dex scatter, within 0.005-0.5
  (z = 0.04 at r = 15, 0.12 at 17.7, 0.37 at 20.5: the run of redshift with magnitude of
  the SDSS main sample and GAMA, e.g. Strauss et al. 2002; Driver et al. 2011);
* foreground stars with ``N(<r) = D * 10^(0.15 (r - 24))`` per arcmin^2 between r = 12
  and 24, ``D`` log-uniform in 0.3-3 (high to intermediate galactic latitude), and
  effective temperatures of 3200-7000 K (mostly K and M dwarfs at faint magnitudes).
"""

from __future__ import annotations

import numpy as np

__all__ = []

_MAG_RANGE = (15.0, 21.5)
_COUNT_SLOPE = 0.35
_NEIGHBOUR_FAINT = 24.0
_NEIGHBOUR_DENSITY = 20.0  # per arcmin^2 brighter than _NEIGHBOUR_FAINT
_MAX_NEIGHBOURS = 12
_STAR_RANGE = (12.0, 24.0)
_STAR_SLOPE = 0.15
_MAX_STARS = 20
_PAD = 3.0  # arcsec around the field where objects still shed light into it


def half_light_radius_for(r_mag, rng):
    """Half-light radius (arcsec) of a galaxy of magnitude ``r_mag`` from the size-magnitude relation."""
    return float(10.0 ** (0.4 - 0.15 * (r_mag - 18.0) + 0.15 * rng.standard_normal()))


def _truncated_counts(rng, n, slope, lo, hi):
    """``n`` magnitudes in [lo, hi] with dN/dm proportional to 10^(slope m)."""
    a, b = 10.0 ** (slope * lo), 10.0 ** (slope * hi)
    return np.log10(a + rng.random(n) * (b - a)) / slope


_Z_MEDIAN_AT_17_7 = 0.12
_Z_SLOPE = 0.18  # dex per magnitude
_Z_SCATTER = 0.15  # dex
_Z_RANGE = (0.005, 0.5)


def draw_redshift(seed, r_mag):
    """Redshift of a galaxy of seed ``seed`` seen at magnitude ``r_mag`` (deterministic; see the module).

    Examples
    --------
    >>> z = [draw_redshift(s, 17.7) for s in range(200)]
    >>> 0.10 < float(np.median(z)) < 0.14, draw_redshift(3, 20.0) == draw_redshift(3, 20.0)
    (True, True)
    """
    u = np.random.default_rng(np.random.SeedSequence([int(seed), 9])).standard_normal()
    log_z = np.log10(_Z_MEDIAN_AT_17_7) + _Z_SLOPE * (float(r_mag) - 17.7) + _Z_SCATTER * u
    return float(np.clip(10.0**log_z, *_Z_RANGE))


def galaxy_size_and_mag(seed, field, *, r_mag=None, half_light_radius=None, mag_range=None):
    """(r magnitude, half-light radius in arcsec) of the observed galaxy ``seed`` (the same in every view).

    ``mag_range`` (bright, faint) replaces the range of the galaxy counts (r = 15-21.5).
    """
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 6]))
    mag = float(_truncated_counts(rng, 1, _COUNT_SLOPE, *(_MAG_RANGE if mag_range is None else mag_range))[0])
    size = half_light_radius_for(mag, rng)
    mag = mag if r_mag is None else float(r_mag)
    if half_light_radius is None:
        if r_mag is not None:
            size = half_light_radius_for(mag, rng)
        size = float(np.clip(size, 0.3, field / 5.0))
    else:
        size = float(half_light_radius)
    return mag, size


def draw_field(seed, view, field, r_mag, *, neighbours=True, stars=True):
    """Neighbours and stars of one view: two lists of dicts (positions in arcsec from the centre).

    ``neighbours``/``stars``: `True` for the default densities, `False` for none, or a
    number: the neighbour density is multiplied by it; for stars it is ``D`` (stars per
    arcmin^2 brighter than r = 24).
    """
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 7, int(view)]))
    half = field / 2.0 + _PAD
    area = (2.0 * half / 60.0) ** 2  # arcmin^2
    out_n, out_s = [], []
    bright = r_mag + 0.5
    factor = float(neighbours) if not isinstance(neighbours, bool) else float(neighbours)
    star_d = 10.0 ** rng.uniform(np.log10(0.3), np.log10(3.0))
    if not isinstance(stars, bool):
        star_d = float(stars)
    elif not stars:
        star_d = 0.0
    if factor > 0 and bright < _NEIGHBOUR_FAINT:
        expected = factor * _NEIGHBOUR_DENSITY * (1.0 - 10.0 ** (_COUNT_SLOPE * (bright - _NEIGHBOUR_FAINT))) * area
        n = min(int(rng.poisson(expected)), _MAX_NEIGHBOURS)
        mags = _truncated_counts(rng, n, _COUNT_SLOPE, bright, _NEIGHBOUR_FAINT)
        for m in mags:
            x, y = rng.uniform(-half, half, 2)
            out_n.append({"seed": int(rng.integers(0, 2**32 - 1)), "dx": float(x), "dy": float(y), "r_mag": float(m),
                          "half_light_radius": float(np.clip(half_light_radius_for(m, rng), 0.15, 5.0)),
                          "view": int(rng.integers(0, 8))})
    if star_d > 0:
        lo, hi = _STAR_RANGE
        expected = star_d * (1.0 - 10.0 ** (_STAR_SLOPE * (lo - hi))) * area
        n = min(int(rng.poisson(expected)), _MAX_STARS)
        mags = _truncated_counts(rng, n, _STAR_SLOPE, lo, hi)
        for m in mags:
            x, y = rng.uniform(-half, half, 2)
            out_s.append({"dx": float(x), "dy": float(y), "r_mag": float(m),
                          "temperature": float(10.0 ** rng.uniform(np.log10(3200.0), np.log10(7000.0)))})
    return out_n, out_s
