"""The galaxy population of the mock universe: one galaxy's intrinsic parameters from a seed.

A population drawn by specific star-formation rate (ellipticals, spirals, irregular/
starburst galaxies and edge-on disks); each galaxy has a Sérsic bulge, an exponential
disk with spiral arms, star-forming clumps, optionally a bar and a companion, star
particles of six ages and dust clouds.  Rendering is in `bandsynth.datasets.mock.rendering`."""

from __future__ import annotations

import functools

import numpy as np
from scipy.special import gammaincinv

from ...units import flux_from_ab
from .families import agn_band_fluxes, clump_weights, draw_physics, family_table, get_family, imf_light_factor
from .families import post_starburst, public_physics
from .spectra import AGE_BINS, N_BINS, population_table

__all__ = ["galaxy_seed", "GALAXY_CLASSES"]


#: Galaxy classes, in order of increasing specific star-formation rate (edge-on disks are spirals
#: seen edge-on).
GALAXY_CLASSES = ("elliptical", "spiral", "edge-on", "irregular")


_SMOOTH_FRACTION = np.array([0.08, 0.08, 0.2, 0.35, 0.45, 0.5])  # light of each age kept smooth


# Share of the galaxy's r-band light carried by one star particle, per age bin: young stars
# come in few bright particles, old stars in many faint ones.
_PARTICLE_QUANTUM = np.array([1 / 250, 1 / 400, 1 / 700, 1 / 3000, 1 / 5000, 1 / 6000])


_MAX_PARTICLES_PER_SET = 6000


_N_DUST_CLOUDS = 400


_AGB_SCATTER = 2.0  # ln-scatter of the AGB light of a star particle


def draw_uv_upturn(rng, galaxy_class):
    """UV-upturn strength of each age bin: a share of the old populations' light, strongest in ellipticals.

    The upturn puts light into the far and near ultraviolet and almost none into the optical, so
    it is the part of a galaxy's ultraviolet that its optical bands cannot tell
    (``benchmarks/photometry.py --by-class`` measures what it leaves any g + r model).

    Parameters
    ----------
    rng : numpy.random.Generator
        The stream to draw from (one uniform number).
    galaxy_class : str
        One of `GALAXY_CLASSES`.

    Returns
    -------
    upturn : numpy.ndarray
        ``(N_BINS,)`` shares of each age bin's light; zero for the four youngest bins.

    Examples
    --------
    >>> upturn = draw_uv_upturn(np.random.default_rng(0), "elliptical")
    >>> upturn.shape, bool(upturn[0] == 0.0), bool(0.0 <= upturn[-1] <= 0.024)
    ((6,), True, True)
    """
    upturn = np.zeros(N_BINS)
    upturn[4:] = rng.uniform(0.0, 0.012) * (2.0 if galaxy_class == "elliptical" else 1.0)
    return upturn


# ----------------------------------------------------------------------------------------------
# Intrinsic galaxy (view independent)
# ----------------------------------------------------------------------------------------------
def galaxy_seed(seed, index):
    """Seed of galaxy ``index`` of a data set made with ``seed`` (see :func:`make_dataset`).

    Parameters
    ----------
    seed : int
        Seed of the data set.
    index : int
        Index of the galaxy in it.

    Returns
    -------
    galaxy_seed : int
        The galaxy's seed (its ``galaxy_id``).

    Examples
    --------
    >>> galaxy_seed(0, 1) == galaxy_seed(0, 1) != galaxy_seed(0, 2)
    True
    """
    return int(np.random.SeedSequence([int(seed), int(index), 0x6D6F636B]).generate_state(1, np.uint32)[0])


@functools.lru_cache(maxsize=1)
def _ssfr_cdf():
    """The population's log10 sSFR [1/yr]: red sequence 35 %, star-forming sequence 50 %,
    starbursts 15 % (a mixture of three normals), tabulated as (grid, cdf)."""
    from scipy.special import ndtr

    grid = np.linspace(-13.5, -7.8, 2000)
    cdf = 0.35 * ndtr((grid + 11.8) / 0.35) + 0.50 * ndtr((grid + 10.1) / 0.3) + 0.15 * ndtr((grid + 9.1) / 0.3)
    return grid, (cdf - cdf[0]) / (cdf[-1] - cdf[0])


def _draw_log_ssfr(u):
    """Quantile function of the population's log10 sSFR [1/yr]."""
    grid, cdf = _ssfr_cdf()
    return float(np.interp(u, cdf, grid))


def _classify(log_ssfr, u_edge):
    if log_ssfr < -11.0:
        return "elliptical"
    if log_ssfr > -9.5:
        return "irregular"
    return "edge-on" if u_edge < 0.25 else "spiral"


def sersic_b(n):
    return float(gammaincinv(2.0 * n, 0.5))


class _Galaxy:
    """All view-independent properties of one galaxy; lengths in units of the stamp width."""

    def __init__(self, seed, *, log_ssfr=None, galaxy_class=None, family="default"):
        self.family = get_family(family)
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 1]))
        self.seed = int(seed)
        u_ssfr, u_edge = rng.random(2)
        self.log_ssfr = _draw_log_ssfr(u_ssfr) if log_ssfr is None else float(log_ssfr)
        self.galaxy_class = _classify(self.log_ssfr, u_edge) if galaxy_class is None else galaxy_class
        if self.galaxy_class not in GALAXY_CLASSES:
            raise ValueError(f"galaxy_class must be one of {GALAXY_CLASSES}, got {galaxy_class!r}")
        cls = self.galaxy_class
        # a non-default family's extra physics comes from its own stream of the seed
        self.physics = None if self.family.is_default else draw_physics(self.family, self.seed, cls)
        self.ra = float(rng.uniform(0.0, 360.0))
        self.dec = float(np.degrees(np.arcsin(rng.uniform(-1.0, 1.0))))
        self.r_mag = float(rng.uniform(13.0, 15.5))
        self.params = self._draw_structure(rng, cls, self.family)
        self._draw_populations(rng, cls)
        mass, bt = self._draw_masses(rng, cls)
        if self.physics is not None and self.physics["post_starburst"]:
            mass = post_starburst(mass, self.physics)
        self._assign_light(mass, bt)

        # ---- star particles (3-D, galaxy frame) --------------------------------------------
        self._make_particles(rng)
        self._make_dust_clouds(rng)

    # .........................................................................................
    @staticmethod
    def _draw_structure(rng, cls, fam):
        """Structural parameters (sizes: fraction of the stamp width) of a galaxy of class ``cls``
        (bars as family ``fam`` draws them)."""
        p = {}
        p["disk_scale"] = float(rng.uniform(0.09, 0.14))
        p["disk_thickness"] = float(rng.uniform(0.08, 0.15))
        p["arms_m"] = int(rng.choice([2, 2, 3, 4]))
        p["arms_pitch_deg"] = float(rng.uniform(12.0, 28.0))
        p["arms_phase"] = float(rng.uniform(0, 2 * np.pi))
        p["arms_width"] = float(rng.uniform(0.25, 0.45))  # radians of spiral phase
        p["arms_concentration"] = float(rng.uniform(3.0, 6.0))
        p["bulge_n"] = float(rng.uniform(3.0, 5.5) if cls == "elliptical" else rng.uniform(1.2, 4.0))
        p["bulge_re"] = float(
            rng.uniform(0.09, 0.18) if cls == "elliptical" else rng.uniform(0.02, 0.05)
        )
        p["bulge_flattening"] = float(rng.uniform(0.55, 1.0) if cls == "elliptical" else rng.uniform(0.6, 0.95))
        p["has_bar"] = bool(cls in ("spiral", "edge-on") and rng.random() < fam.bar_fraction)
        p["bar_length"] = float(rng.uniform(*fam.bar_length) * p["disk_scale"])
        p["bar_axis_ratio"] = float(rng.uniform(*fam.bar_axis_ratio))
        p["bar_angle"] = float(rng.uniform(0, np.pi))
        p["has_companion"] = bool(rng.random() < (0.4 if cls == "irregular" else 0.15))
        p["companion_offset"] = rng.normal(size=3)
        p["companion_offset"] *= rng.uniform(0.28, 0.4) / np.linalg.norm(p["companion_offset"][:2] + 1e-9)
        p["companion_re"] = float(rng.uniform(0.02, 0.04))
        p["companion_n"] = float(rng.uniform(1.0, 4.0))
        p["companion_q"] = float(rng.uniform(0.5, 1.0))
        p["companion_pa"] = float(rng.uniform(0, np.pi))
        p["companion_mass_ratio"] = float(rng.uniform(0.05, 0.25))
        p["companion_star_forming"] = bool(rng.random() < 0.5)
        p["n_clumps"] = int(
            {"elliptical": rng.integers(0, 3), "spiral": rng.integers(10, 30),
             "edge-on": rng.integers(10, 30), "irregular": rng.integers(20, 50)}[cls]
        )
        p["clump_size"] = float(rng.uniform(0.003, 0.008))
        p["dust_tau_v"] = float(
            {"elliptical": rng.uniform(0.0, 0.05), "spiral": rng.uniform(0.3, 1.0),
             "edge-on": rng.uniform(0.4, 1.0), "irregular": rng.uniform(0.2, 0.8)}[cls]
        )
        p["dust_lane_tau_v"] = float(rng.uniform(1.5, 4.0)) if cls != "elliptical" else 0.0
        p["dust_scale"] = float(rng.uniform(1.0, 1.5))  # in disk scale lengths
        # clumpy dust: clouds along the arms and in the disk (mean tau_V over the inner disk)
        p["dust_cloud_tau_v"] = float(
            {"elliptical": 0.0, "spiral": rng.uniform(0.3, 1.0), "edge-on": rng.uniform(0.4, 1.2),
             "irregular": rng.uniform(0.3, 0.9)}[cls]
        )
        p["dust_cloud_size"] = float(rng.uniform(0.006, 0.012))
        if cls == "irregular":
            p["arms_concentration"] = float(rng.uniform(0.5, 1.5))  # weak, patchy arms
        return p

    def _draw_populations(self, rng, cls):
        """Ages, metallicities and UV-upturn strengths of the stellar populations (one per age bin)."""
        ages = np.array(AGE_BINS) * 10.0 ** rng.uniform(-0.1, 0.1, N_BINS)
        z_gal = float(rng.normal(0.0, 0.2))
        metal = z_gal + np.array([0.1, 0.1, 0.05, 0.0, -0.1, -0.2]) + rng.normal(0, 0.05, N_BINS)
        upturn = draw_uv_upturn(rng, cls)
        if self.physics is not None:
            metal = metal + self.physics["metallicity_shift"]
        self.ages, self.metallicities, self.uv_upturn = ages, metal, upturn

    def _draw_masses(self, rng, cls):
        """Masses per component and age bin (total stellar mass = 1), and the bulge-to-total mass."""
        p = self.params
        bt = {
            "elliptical": rng.uniform(0.8, 1.0),
            "spiral": rng.uniform(0.1, 0.5),
            "edge-on": rng.uniform(0.05, 0.4),
            "irregular": rng.uniform(0.0, 0.12),
        }[cls]
        ssfr = 10.0**self.log_ssfr
        burst = rng.uniform(1.5, 3.0) if cls == "irregular" else 1.0
        young = np.array([ssfr * 1e7 * burst, ssfr * 5e7 * burst, ssfr * 3.4e8])
        m = {c: np.zeros(N_BINS) for c in ("bulge", "disk", "arms", "clumps", "bar", "companion")}
        old_mass = 1.0 - young.sum()
        bar_frac = rng.uniform(*self.family.bar_light) if p["has_bar"] else 0.0
        m["bulge"][3:] = bt * old_mass * np.array([0.0, 0.2, 0.8])
        disk_old = (1.0 - bt) * old_mass
        disk_mix = rng.dirichlet([0.3, 3.0, 6.0] if cls == "elliptical" else [2.0, 4.0, 4.0])
        arm_old = rng.uniform(0.2, 0.4) if cls != "elliptical" else 0.0
        # the arms and the bar take shares of the disk's intermediate-age and old stars
        m["arms"][3:5] = arm_old * disk_old * disk_mix[:2]
        m["bar"][3:] = bar_frac * disk_old * disk_mix
        m["disk"][3:] = disk_old * disk_mix - m["arms"][3:] - m["bar"][3:]
        if cls == "elliptical":
            # residual star formation in the disk/bulge, a few clumps at most
            m["bulge"][:3] = 0.6 * young
            m["disk"][:3] = 0.3 * young
            m["clumps"][:3] = 0.1 * young
        else:
            f_clump = rng.uniform(0.5, 0.75)
            m["clumps"][:2] = f_clump * young[:2]
            m["arms"][:2] = (1.0 - f_clump) * 0.65 * young[:2]
            m["disk"][:2] = (1.0 - f_clump) * 0.35 * young[:2]
            m["arms"][2] = 0.45 * young[2]
            m["disk"][2] = 0.55 * young[2]
        if p["n_clumps"] == 0:
            m["disk"] += m["clumps"]
            m["clumps"][:] = 0.0
        if p["has_companion"]:
            q = p["companion_mass_ratio"]
            if p["companion_star_forming"]:
                m["companion"][:] = q * np.array([1e-3, 4e-3, 0.02, 0.1, 0.3, 0.576])
            else:
                m["companion"][3:] = q * np.array([0.0, 0.3, 0.7])
        return m, bt

    def _assign_light(self, m, bt):
        """r-band light of every component and age bin, and the bulge-to-total ratios."""
        self.mass = m
        # r-band light per unit mass of each age bin (SSP-like: L/M ~ t^-0.65, 5 Myr / 10 Gyr ~ 140)
        light_per_mass = (self.ages / 1e10) ** -0.65
        if self.physics is not None:
            light_per_mass = light_per_mass * imf_light_factor(self.ages, self.physics["imf_slope"])
        light = {c: mc * light_per_mass for c, mc in m.items()}
        total = sum(v.sum() for v in light.values())
        f_tot = float(flux_from_ab(self.r_mag))
        self.light_r = {c: v / total * f_tot for c, v in light.items()}  # nanomaggies in r, no dust
        main_light = sum(v.sum() for c, v in light.items() if c != "companion")
        self.bt_r = float(light["bulge"].sum() / main_light)
        self.bt_mass = float(bt)
        # an AGN: a point source holding a share of the galaxy's r-band flux
        self.agn_r = 0.0 if self.physics is None else self.physics["agn_share"] * f_tot

    def _make_particles(self, rng):
        p = self.params
        h = p["disk_scale"]
        pos, flux, age_bin, is_comp, agb_dev = [], [], [], [], []
        total_r = sum(v.sum() for v in self.light_r.values())
        clump_centres = self._arm_positions(rng, max(p["n_clumps"], 1), h, inner=0.5) if p["n_clumps"] else None
        weights = rng.lognormal(0.0, 0.6, max(p["n_clumps"], 1))
        weights /= weights.sum()
        self.clump_scale = None
        if self.physics is not None and self.family.clump_slope is not None:
            weights, self.clump_scale = clump_weights(self.physics, p["n_clumps"], self.family.clump_slope)
        for comp, light in self.light_r.items():
            # one draw per component; the particles of each age bin share its light
            lum = light * (1.0 - _SMOOTH_FRACTION) if comp != "clumps" else np.asarray(light, dtype=float)
            counts = np.where(
                lum > 0,
                np.clip(np.round(lum / (total_r * _PARTICLE_QUANTUM)), 1, _MAX_PARTICLES_PER_SET),
                0,
            ).astype(np.int64)
            if counts.sum() == 0:
                continue
            bins = np.repeat(np.arange(N_BINS), counts)
            xyz = self._sample(comp, rng, bins, clump_centres, weights)
            w = np.exp(np.where(bins < 3, 0.5, 0.2) * rng.standard_normal(bins.size))
            # a particle holds few TP-AGB stars: its AGB light scatters (mean 1 per bin, so the
            # bin's total light is unchanged)
            agb = np.exp(_AGB_SCATTER * rng.standard_normal(bins.size))
            w_sum = np.bincount(bins, weights=w, minlength=N_BINS)
            agb_sum = np.bincount(bins, weights=agb * w, minlength=N_BINS)
            agb_dev.append(agb * (w_sum / np.where(agb_sum > 0, agb_sum, 1.0))[bins] - 1.0)
            pos.append(xyz)
            flux.append(w * (lum / np.where(w_sum > 0, w_sum, 1.0))[bins])
            age_bin.append(bins)
            is_comp.append(np.full(bins.size, comp == "companion"))
        self.particle_pos = np.concatenate(pos)
        self.particle_flux_r = np.concatenate(flux)
        self.particle_bin = np.concatenate(age_bin)
        self.particle_is_companion = np.concatenate(is_comp)
        self.particle_agb_dev = np.concatenate(agb_dev)
        # smooth light of each component (r band, no dust) per age bin
        self.smooth_r = {
            c: (self.light_r[c] * _SMOOTH_FRACTION if c != "clumps" else np.zeros(N_BINS))
            for c in self.light_r
        }

    def _make_dust_clouds(self, rng):
        p = self.params
        h = p["disk_scale"]
        n = _N_DUST_CLOUDS if p["dust_cloud_tau_v"] > 0 else 0
        n_arm = n * 2 // 3
        # dust lanes run along the inner (concave) edge of the arms
        arms = self._arm_positions(rng, n_arm, h, scatter=0.5 * p["arms_width"], offset=-1.2 * p["arms_width"])
        radius = h * rng.gamma(2.0, 1.0, n - n_arm)
        phi = rng.uniform(0, 2 * np.pi, n - n_arm)
        disk = np.stack([radius * np.cos(phi), radius * np.sin(phi), rng.laplace(0, 0.03 * h, n - n_arm)], 1)
        self.dust_pos = np.concatenate([arms, disk])
        w = rng.lognormal(0.0, 0.8, n)
        # integral of tau_V over the face-on disk (stamp-fraction^2): mean tau over r < 2h
        self.dust_weight = w / max(w.sum(), 1e-30) * p["dust_cloud_tau_v"] * np.pi * (2 * h) ** 2

    def _arm_positions(self, rng, n, h, *, inner=0.0, scatter=None, offset=0.0):
        p = self.params
        radius = h * rng.gamma(2.0, 1.0, n)
        if inner:
            radius = np.where(radius < inner * h, radius + inner * h, radius)
        arm = rng.integers(0, p["arms_m"], n)
        tan_pitch = np.tan(np.radians(p["arms_pitch_deg"]))
        width = p["arms_width"] if scatter is None else scatter
        phase = rng.normal(offset, width, n)
        if self.galaxy_class == "irregular":
            phase = rng.uniform(-np.pi, np.pi, n) * rng.uniform(0.3, 1.0)
        phi = p["arms_phase"] + 2 * np.pi * arm / p["arms_m"] + np.log(radius / h) / tan_pitch + phase / p["arms_m"]
        z = rng.laplace(0.0, 0.03 * h, n)
        return np.stack([radius * np.cos(phi), radius * np.sin(phi), z], axis=1)

    def _sample(self, comp, rng, bins, clump_centres, clump_w):
        """Positions (galaxy frame) of particles of age bins ``bins`` of component ``comp``."""
        p = self.params
        h = p["disk_scale"]
        n = bins.size
        if comp == "disk":
            radius = h * rng.gamma(2.0, 1.0, n)
            phi = rng.uniform(0, 2 * np.pi, n)
            hz = p["disk_thickness"] * h * np.where(bins < 3, 0.5, 1.0)  # young stars: thinner disk
            return np.stack([radius * np.cos(phi), radius * np.sin(phi), hz * rng.laplace(0, 1.0, n)], axis=1)
        if comp == "arms":
            return self._arm_positions(rng, n, h)
        if comp == "clumps":
            which = rng.choice(len(clump_w), n, p=clump_w)
            if self.clump_scale is not None:  # sizes growing with luminosity
                scale = self.clump_scale[which][:, None]
                return clump_centres[which] + rng.normal(0.0, p["clump_size"], (n, 3)) * scale * [1, 1, 0.5]
            return clump_centres[which] + rng.normal(0.0, p["clump_size"], (n, 3)) * [1, 1, 0.5]
        if comp in ("bulge", "companion"):
            nn, re = (p["bulge_n"], p["bulge_re"]) if comp == "bulge" else (p["companion_n"], p["companion_re"])
            radius = 1.15 * re * (rng.gamma(2 * nn, 1.0, n) / sersic_b(nn)) ** nn
            v = rng.normal(size=(n, 3))
            v *= (radius / np.linalg.norm(v, axis=1))[:, None]
            if comp == "bulge":
                v[:, 2] *= p["bulge_flattening"]
                return v
            v[:, 1] *= p["companion_q"]
            return v  # companion: placed per view (its own orientation)
        if comp == "bar":
            length = p["bar_length"]
            x = rng.normal(0, 0.45 * length, n)
            y = rng.normal(0, 0.45 * length * p["bar_axis_ratio"], n)
            c, s = np.cos(p["bar_angle"]), np.sin(p["bar_angle"])
            return np.stack([c * x - s * y, s * x + c * y, rng.laplace(0, 0.05 * h, n)], axis=1)
        raise AssertionError(comp)  # pragma: no cover

    # .........................................................................................
    def view_angles(self, view):
        """(inclination, position angle) in radians of camera ``view``."""
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 2, int(view)]))
        u_inc, u_pa = rng.random(2)
        if self.galaxy_class == "edge-on":
            inc = np.radians(82.0 + 8.0 * u_inc)
        elif self.galaxy_class == "spiral":
            inc = np.arccos(1.0 - u_inc * (1.0 - np.cos(np.radians(72.0))))
        else:
            inc = np.arccos(1.0 - u_inc)
        return float(inc), float(np.pi * u_pa)

    def population_fluxes(self, bands, redshift=0.0):
        """(n_band, n_age) band fluxes per unit r-band flux of each age bin, the AGB spectrum per
        unit r flux and the AGB share of each bin's r flux (see `population_table`).

        At ``redshift`` the bands observe the redshifted spectra, and the fluxes are scaled so
        that the stars' light in the observed r band is the galaxy's r flux (``r_mag`` stays the
        observed magnitude)."""
        names = tuple(b.name for b in bands)
        table, agb_shape, agb_amp = self._rest_r_table(names, redshift)
        if redshift:
            ratio = self._observed_per_rest_r(redshift)
            table, agb_shape = table / ratio, agb_shape / ratio
        return table, agb_shape, agb_amp

    def _rest_r_table(self, names, redshift):
        """`population_table` (plus a family's nebular lines) per unit rest-frame r flux."""
        key = (names, tuple(self.ages), tuple(self.metallicities), tuple(self.uv_upturn))
        spectra = self.family.stellar_spectra
        table, agb_shape, agb_amp = population_table(key, redshift, spectra)
        if self.physics is not None:
            table = table + family_table(names, self.ages, self.metallicities, self.uv_upturn, self.physics,
                                         redshift, spectra)
        return table, agb_shape, agb_amp

    def _observed_per_rest_r(self, redshift):
        """The stars' light in the r band at ``redshift`` per unit of their rest-frame r light."""
        light = sum(self.light_r.values())  # (n_age,) rest-frame r
        return float(self._rest_r_table(("r",), redshift)[0][0] @ light / light.sum())

    def agn_fluxes(self, bands, redshift=0.0):
        """(n_band,) band fluxes (nanomaggies, no dust) of the AGN, or None without one."""
        if self.agn_r <= 0:
            return None
        fluxes = self.agn_r * agn_band_fluxes([b.name for b in bands], self.physics, redshift)
        return fluxes / self._observed_per_rest_r(redshift) if redshift else fluxes

    def family_meta(self):
        """``{"family": name, "physics": {...}}`` for a non-default family, else ``{}``."""
        if self.physics is None:
            return {}
        return {"family": self.family.name, "physics": public_physics(self.physics)}


@functools.lru_cache(maxsize=32)
def galaxy(seed, log_ssfr, galaxy_class, family="default"):
    return _Galaxy(seed, log_ssfr=log_ssfr, galaxy_class=galaxy_class, family=family)


def stratified_log_ssfr(n, rng):
    """Latin-hypercube draw of the population's sSFR: every sSFR quantile is represented."""
    u = (rng.permutation(n) + rng.random(n)) / n
    return np.array([_draw_log_ssfr(v) for v in u])
