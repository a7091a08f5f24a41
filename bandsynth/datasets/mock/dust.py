"""Dust attenuation and extinction curves of the mock universe's families.

Each curve is returned as ``A_lambda / A_V``, the optical depth at a wavelength per unit
optical depth in V, so that a screen of ``tau_V`` dims a band by ``exp(-tau_V * curve)``.
The formulae are the published ones, cited next to each; where the reference package
`dust_extinction <https://dust-extinction.readthedocs.io>`_ implements the same curve,
the tests compare against it (it is optional: the mock universe never imports it, so
its images do not depend on whether it is installed).

* ``"calzetti"``: Calzetti et al. (2000, ApJ 533, 682), eq. 4, R_V = 4.05: the
  attenuation curve of local starbursts (the default family's only curve);
* ``"smc_bar"``: Gordon et al. (2003, ApJ 594, 279), the SMC bar average: FM90
  parameters of their table 3 in the UV, a natural cubic spline through their
  optical/NIR points (as revised by Gordon et al. 2016, ApJ 826, 104) anchored at
  0 for infinite wavelength, R_V = 2.74 -- steep in the UV, no 2175 A bump;
* ``"mw"``: Cardelli, Clayton & Mathis (1989, ApJ 345, 245), eqs. 2-5, a Milky Way
  extinction curve for any R_V (3.1 on average, 2.2-5.8 along observed sight lines),
  with the 2175 A bump;
* ``"salim18"``: the modified Calzetti curve of Noll et al. (2009, A&A 507, 1793) in
  the form of Salim, Boquien & Lee (2018, ApJ 859, 11), eqs. 8-10: Calzetti times
  ``(lambda / 550 nm)^delta`` (``delta < 0`` steeper), renormalised to keep
  ``E(B-V)``, plus a Drude bump of amplitude ``B`` at 217.5 nm (width 35 nm).

Examples
--------
>>> from bandsynth.datasets.mock.dust import attenuation_curve
>>> lam = [153.0, 550.0]   # GALEX FUV, V
>>> [round(float(v), 2) for v in attenuation_curve(lam, "calzetti")]
[2.52, 1.0]
>>> bool(attenuation_curve(153.0, "smc_bar") > attenuation_curve(153.0, "calzetti"))
True
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["attenuation_curve", "DUST_LAWS"]


#: Names of the attenuation curves :func:`attenuation_curve` knows.
DUST_LAWS = ("calzetti", "smc_bar", "mw", "salim18")


def _microns(wavelength):
    import astropy.units as u

    if isinstance(wavelength, u.Quantity):
        return np.asarray(wavelength.to_value(u.um, equivalencies=u.spectral()), dtype=float)
    return np.asarray(wavelength, dtype=float) / 1000.0  # nm -> micron


def _calzetti_k(lam):
    """Calzetti et al. (2000) eq. 4, k(lambda) with R_V = 4.05 (lambda in micron), clipped at 0."""
    lam_c = np.clip(lam, 0.12, None)
    short = 2.659 * (-2.156 + 1.509 / lam_c - 0.198 / lam_c**2 + 0.011 / lam_c**3) + 4.05
    long = 2.659 * (-1.857 + 1.040 / lam) + 4.05
    return np.clip(np.where(lam < 0.63, short, long), 0.0, None)


def _fm90(x, c1, c2, c3, c4, x0, gamma):
    """Fitzpatrick & Massa (1990) E(x - V) / E(B - V) in the UV (x in 1/micron)."""
    x2 = x * x
    out = c1 + c2 * x + c3 * x2 / ((x2 - x0**2) ** 2 + x2 * gamma**2)
    y = np.clip(x - 5.9, 0.0, None)
    return out + c4 * (0.5392 * y**2 + 0.05644 * y**3)


# Gordon et al. (2003) SMC bar: FM90 parameters (table 3) and optical/NIR A(lambda)/A(V)
# at these wavelengths (micron; 2.198 and 1.25 as revised by Gordon et al. 2016).
_SMC_FM90 = (-4.959, 2.264, 0.389, 0.461, 4.6, 1.0)
_SMC_RV = 2.74
_SMC_OPTNIR = ((2.198, 1.65, 1.25, 0.81, 0.65, 0.55, 0.44, 0.37),
               (0.11, 0.169, 0.25, 0.567, 0.801, 1.00, 1.374, 1.672))


@functools.cache
def _smc_optical_spline():
    """The SMC bar's optical/NIR spline (built once: it was rebuilt on every galaxy's render)."""
    from scipy.interpolate import CubicSpline

    anchors_x = 1.0 / np.array([0.27, 0.26])
    anchors_y = _fm90(anchors_x, *_SMC_FM90) / _SMC_RV + 1.0
    opt_x = np.concatenate([[0.0], 1.0 / np.array(_SMC_OPTNIR[0]), anchors_x])
    opt_y = np.concatenate([[0.0], _SMC_OPTNIR[1], anchors_y])
    return CubicSpline(opt_x, opt_y, bc_type="natural")


def _smc_bar(lam):
    """Gordon et al. (2003) SMC bar A(lambda)/A(V): FM90 above x = 1/0.27 micron, spline below."""
    x = 1.0 / np.clip(lam, 0.1, None)  # FUV beyond 100 nm held at its 100-nm value
    uv = _fm90(x, *_SMC_FM90) / _SMC_RV + 1.0
    optical = _smc_optical_spline()(np.clip(x, 0.0, None))
    return np.where(x >= 1.0 / 0.27, uv, optical)


def _ccm89(lam, r_v):
    """Cardelli, Clayton & Mathis (1989) A(lambda)/A(V) = a(x) + b(x) / R_V, eqs. 2-5 (x in 1/micron)."""
    x = np.clip(1.0 / lam, 0.3, 10.0)  # beyond the fitted range: held at its ends
    a, b = np.empty_like(x), np.empty_like(x)
    ir = x < 1.1
    a[ir], b[ir] = 0.574 * x[ir] ** 1.61, -0.527 * x[ir] ** 1.61
    opt = (x >= 1.1) & (x < 3.3)
    y = x[opt] - 1.82
    a[opt] = np.polyval([0.32999, -0.77530, 0.01979, 0.72085, -0.02427, -0.50447, 0.17699, 1.0], y)
    b[opt] = np.polyval([-2.09002, 5.30260, -0.62251, -5.38434, 1.07233, 2.28305, 1.41338, 0.0], y)
    uv = (x >= 3.3) & (x < 8.0)
    xu = x[uv]
    fy = np.clip(xu - 5.9, 0.0, None)
    a[uv] = 1.752 - 0.316 * xu - 0.104 / ((xu - 4.67) ** 2 + 0.341) - 0.04473 * fy**2 - 0.009779 * fy**3
    b[uv] = -3.090 + 1.825 * xu + 1.206 / ((xu - 4.62) ** 2 + 0.263) + 0.2130 * fy**2 + 0.1207 * fy**3
    fuv = x >= 8.0
    z = x[fuv] - 8.0
    a[fuv] = -1.073 - 0.628 * z + 0.137 * z**2 - 0.070 * z**3
    b[fuv] = 13.670 + 4.257 * z - 0.420 * z**2 + 0.374 * z**3
    return a + b / r_v


def _salim18(lam, delta, bump):
    """Salim, Boquien & Lee (2018) eqs. 8-10: modified Calzetti curve, A(lambda)/A(V)."""
    r_v_cal = 4.05
    r_v = r_v_cal / ((r_v_cal + 1.0) * (0.44 / 0.55) ** delta - r_v_cal)
    drude = bump * lam**2 * 0.035**2 / ((lam**2 - 0.2175**2) ** 2 + lam**2 * 0.035**2)
    return (_calzetti_k(lam) * r_v / r_v_cal * (lam / 0.55) ** delta + drude) / r_v


def attenuation_curve(wavelength, law="calzetti", *, r_v=3.1, delta=0.0, bump=0.0):
    """``A_lambda / A_V`` of one of the mock universe's dust curves.

    Parameters
    ----------
    wavelength : array-like of float or `~astropy.units.Quantity`
        Wavelengths (nm if plain numbers), 100 nm to 3 micron.
    law : {"calzetti", "smc_bar", "mw", "salim18"}
        The curve (see the module's description and references).
    r_v : float
        ``A_V / E(B-V)`` of the ``"mw"`` curve (Cardelli et al. 1989), 2 to 6.
    delta, bump : float
        Slope modification and 2175-A bump amplitude of the ``"salim18"`` curve.

    Returns
    -------
    curve : ndarray
        ``A_lambda / A_V`` at each wavelength (1 at 550 nm, up to rounding of the
        published fits).

    Raises
    ------
    ValueError
        For an unknown ``law`` or ``r_v`` outside 2-6.

    Examples
    --------
    >>> import numpy as np
    >>> curve = attenuation_curve([220.0, 550.0, 2150.0], "mw", r_v=3.1)
    >>> np.round(curve, 2)  # the 2175 A bump, V, Ks
    array([3.15, 1.  , 0.12])
    """
    lam = _microns(wavelength)
    if law == "calzetti":
        return _calzetti_k(lam) / 4.05
    if law == "smc_bar":
        return _smc_bar(np.atleast_1d(lam)).reshape(lam.shape)
    if law == "mw":
        if not 2.0 <= float(r_v) <= 6.0:
            raise ValueError(f"r_v must be between 2 and 6 for the 'mw' curve (Cardelli et al. 1989), got {r_v!r}")
        return _ccm89(np.atleast_1d(lam), float(r_v)).reshape(lam.shape)
    if law == "salim18":
        return _salim18(lam, float(delta), float(bump))
    raise ValueError(f"unknown dust law {law!r}; expected one of {DUST_LAWS}")
