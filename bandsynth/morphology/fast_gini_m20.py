"""Fast batched Gini and M20: :func:`gini_m20`, statmorph's Gini/M20 chain for thousands of
images.

It follows statmorph's own chain step by step (outlier masking, centroid, circular
Petrosian radius, asymmetry centre, elliptical Petrosian radius, the smoothed "Gini
segmap", then Lotz et al. 2004 Gini over that segmap and M20 about the flux centroid of
that segmap) with exact pixel/ellipse overlaps computed only on the aperture edge, and
skips everything Gini and M20 do not need (MID statistics, Sérsic fits, shape asymmetry)."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import scipy.ndimage as ndi
import scipy.optimize as opt

from .segmentation import central_label, segment

__all__ = ["GiniM20", "gini_m20"]


def _unit_circle_triangle(ax, ay, bx, by):
    """Signed area of (unit circle) ∩ (triangle O, A, B), vectorised."""
    dx, dy = bx - ax, by - ay
    a2 = dx * dx + dy * dy
    b = ax * dx + ay * dy
    c = ax * ax + ay * ay - 1.0
    disc = b * b - a2 * c
    hit = (disc > 0) & (a2 > 0)
    safe = np.where(hit, a2, 1.0)
    sq = np.sqrt(np.where(hit, disc, 0.0))
    t1 = np.where(hit, np.clip((-b - sq) / safe, 0.0, 1.0), 1.0)
    t2 = np.where(hit, np.clip((-b + sq) / safe, 0.0, 1.0), 1.0)
    px, py = ax + t1 * dx, ay + t1 * dy
    qx, qy = ax + t2 * dx, ay + t2 * dy
    s1 = np.arctan2(ax * py - ay * px, ax * px + ay * py)
    s2 = np.arctan2(qx * by - qy * bx, qx * bx + qy * by)
    return 0.5 * (s1 + s2 + px * qy - py * qx)


def _polygon_circle_area(us, vs, radius):
    """Area of circle(radius) ∩ quadrilaterals given by corner arrays (4, m)."""
    us = us / radius
    vs = vs / radius
    ax, ay = us, vs
    bx, by = us[[1, 2, 3, 0]], vs[[1, 2, 3, 0]]
    tri = _unit_circle_triangle(ax.ravel(), ay.ravel(), bx.ravel(), by.ravel()).reshape(us.shape)
    return np.abs(tri.sum(axis=0)) * radius * radius


class _EllipseOverlap:
    """Exact overlaps of concentric, similar ellipses with the pixels of a grid.

    In coordinates rotated by ``theta`` and with the minor axis stretched by
    ``elongation`` the ellipse of semi-major axis ``a`` is a circle of radius
    ``a`` and every pixel a parallelogram of area ``elongation``.  Pixels are
    sorted once by the radius of their centre: those well inside are summed
    from a cumulative sum, and only a thin band around the radius needs the
    exact polygon/circle area.  Matches photutils' ``method='exact'`` to ~1e-13.
    """

    def __init__(self, shape, cx, cy, elongation=1.0, theta=0.0, values=(), presort=True):
        ny, nx = shape
        ct, st = math.cos(theta), math.sin(theta)
        xc = np.arange(nx) - cx
        yc = np.arange(ny) - cy
        uc = (xc[None, :] * ct + yc[:, None] * st).ravel()
        vc = ((-xc[None, :] * st + yc[:, None] * ct) * elongation).ravel()
        # offsets of the four corners from the pixel centre (same for every pixel)
        du = np.array([-0.5, 0.5, 0.5, -0.5]) * ct + np.array([-0.5, -0.5, 0.5, 0.5]) * st
        dv = (-np.array([-0.5, 0.5, 0.5, -0.5]) * st + np.array([-0.5, -0.5, 0.5, 0.5]) * ct) * elongation
        self.half = float(np.sqrt(du * du + dv * dv).max()) * (1 + 1e-12) + 1e-12
        self.du, self.dv = du[:, None], dv[:, None]
        self.elong = float(elongation)
        rho = np.sqrt(uc * uc + vc * vc)
        values = [np.asarray(v, dtype=float).ravel() for v in values]
        self.presort = presort
        if presort:  # many radii to come: sort once, then every sum is a lookup
            order = np.argsort(rho, kind="stable")
            rho, uc, vc = rho[order], uc[order], vc[order]
            values = [v[order] for v in values]
            self.cums = [np.concatenate([[0.0], np.cumsum(v)]) for v in values]
            self.cums_rho = [np.concatenate([[0.0], np.cumsum(v * rho)]) for v in values]
            self.ramp = 0.25 * (1.0 + self.elong)  # typical radial half-extent of a pixel
        self.rho, self.uc, self.vc, self.values = rho, uc, vc, values

    def _edges(self, radius):
        """Indices of pixels near the circle of ``radius`` and the sums of those inside."""
        if self.presort:
            lo = int(np.searchsorted(self.rho, radius - self.half, side="left"))
            hi = int(np.searchsorted(self.rho, radius + self.half, side="right"))
            return np.arange(lo, hi), [float(c[lo]) for c in self.cums]
        inner = self.rho < radius - self.half
        edge = np.nonzero(~inner & (self.rho <= radius + self.half))[0]
        return edge, [float(v[inner].sum()) for v in self.values]

    def sums(self, *radii):
        """Exact aperture sums: one list of ``Σ w·v`` (one per ``values``) per radius."""
        parts = [self._edges(r) for r in radii]
        out = [p[1] for p in parts]
        sizes = [len(p[0]) for p in parts]
        if sum(sizes):
            cat = np.concatenate([p[0] for p in parts])
            rad = np.repeat(np.asarray(radii, dtype=float), sizes)
            w = _polygon_circle_area(self.uc[cat] + self.du, self.vc[cat] + self.dv, rad) / self.elong
            bounds = np.cumsum([0] + sizes)
            for k in range(len(radii)):
                part = slice(bounds[k], bounds[k + 1])
                sel = cat[part]
                out[k] = [o + float(np.dot(w[part], v[sel])) for o, v in zip(out[k], self.values)]
        return out

    def approx_sums(self, radii):
        """Approximate sums for many radii at once (presorted only).

        Each pixel counts with a weight rising linearly from 0 to 1 as the
        radius crosses its centre ± ``ramp``; two cumulative sums give it in
        O(1) per radius.
        """
        h = self.ramp
        lo = np.searchsorted(self.rho, radii - h, side="right")
        hi = np.searchsorted(self.rho, radii + h, side="right")
        out = []
        for c, cr in zip(self.cums, self.cums_rho):
            band = ((radii + h) * (c[hi] - c[lo]) - (cr[hi] - cr[lo])) / (2 * h)
            out.append(c[lo] + band)
        return out


def _circle_weights(shape, cx, cy, r):
    """Exact circle/pixel overlaps (photutils) on the circle's bounding box, clipped to ``shape``."""
    from photutils.geometry import circular_overlap_grid

    ny, nx = shape
    x0, x1 = max(0, math.floor(cx - r + 0.5)), min(nx, math.ceil(cx + r + 0.5))
    y0, y1 = max(0, math.floor(cy - r + 0.5)), min(ny, math.ceil(cy + r + 0.5))
    if x1 <= x0 or y1 <= y0:
        return (slice(0, 0), slice(0, 0)), np.zeros((0, 0))
    w = circular_overlap_grid(
        x0 - 0.5 - cx, x1 - 0.5 - cx, y0 - 0.5 - cy, y1 - 0.5 - cy, x1 - x0, y1 - y0, float(r), 1, 1
    )
    return (slice(y0, y1), slice(x0, x1)), w


class GiniM20(NamedTuple):
    """Result of :func:`gini_m20`: arrays of length ``n_images``.

    ``gini`` and ``m20`` are ``nan`` where they could not be measured;
    ``flag`` follows statmorph (0 good, 1 suspect, 2 bad, 4 catastrophic).

    Attributes
    ----------
    gini, m20 : ndarray
        Gini and M20 of each image.
    flag : ndarray of int
        statmorph's quality flag of each image.
    """

    gini: np.ndarray
    m20: np.ndarray
    flag: np.ndarray


class _FastGiniM20:
    """statmorph's Gini/M20 chain for one source (names mirror statmorph)."""

    eta = 0.2
    annulus_width = 1.0
    petro_fraction_gini = 0.2
    petro_extent_cas = 1.5
    petro_fraction_cas = 0.25
    skybox_size = 32
    cutout_extent = 2.5
    min_cutout_size = 48
    n_sigma_outlier = 10.0
    # statmorph runs Nelder-Mead to 1e-6 pixel; on the same path we stop at
    # 1e-4 pixel: a third fewer evaluations, Gini/M20 move by < 4e-5.
    xtol_center = 1e-4
    # grid points beyond ``approx_min_radius`` whose approximate Petrosian
    # function exceeds ``approx_margin`` are taken as positive without an exact
    # evaluation (on 130 test galaxies no such point had an exact value < 0.07)
    approx_margin = 0.1
    approx_min_radius = 3.0

    def __init__(self, image, segmap, label, mask=None):
        self.flag = 0
        self.gini = self.m20 = float("nan")
        self.label = label
        self._setup(image, segmap, mask)
        if np.sum(self.no_bg) <= 0:
            self.flag = 4
            return
        self._measure()

    # -- stamp and masks --------------------------------------------------
    def _setup(self, image, segmap, mask):
        sel = segmap == self.label
        rows = np.nonzero(sel.any(axis=1))[0]
        cols = np.nonzero(sel.any(axis=0))[0]
        xmin, xmax, ymin, ymax = cols[0], cols[-1], rows[0], rows[-1]
        dx, dy = xmax + 1 - xmin, ymax + 1 - ymin
        xc, yc = xmin + dx // 2, ymin + dy // 2
        dist = int(max(dx, dy) * self.cutout_extent / 2.0)
        dist = max(dist, (self.min_cutout_size - self.min_cutout_size % 2) // 2)
        ny, nx = image.shape
        stamp = (slice(max(0, yc - dist), min(ny, yc + dist)), slice(max(0, xc - dist), min(nx, xc + dist)))
        raw = image[stamp]
        seg = segmap[stamp]
        self.seg = seg
        self.user_mask = mask[stamp] if mask is not None else np.zeros(seg.shape, dtype=bool)
        m = (seg != 0) & (seg != self.label)
        m |= self.user_mask
        m |= ~np.isfinite(raw)
        if self.n_sigma_outlier > 0:
            m |= self._badpixels(raw)
        self.mask = m
        self.img = np.where(~m, raw, 0.0)  # statmorph's _cutout_stamp_maskzeroed
        self.no_bg = np.where(~(m | (seg == 0)), raw, 0.0)
        self.shape = self.img.shape

    def _badpixels(self, raw):
        w = np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1]], dtype=float) / 8.0
        filled = np.where(np.isfinite(raw), raw, 0).astype(float)
        sq = raw.astype(float) ** 2 if raw.dtype == np.float64 else (raw**2).astype(float)
        sq = np.where(np.isfinite(sq), sq, 0.0)
        mean = ndi.correlate(filled, w, mode="nearest")
        mean2 = ndi.correlate(sq, w, mode="nearest")
        with np.errstate(invalid="ignore"):
            std = np.sqrt(mean2 - mean**2)
            return np.abs(raw - mean) > self.n_sigma_outlier * std

    # -- chain ------------------------------------------------------------
    def _measure(self):
        ny, nx = self.shape
        f = self.no_bg.astype(float)
        tot = f.sum()
        yc = float(np.dot(f.sum(axis=1), np.arange(ny)) / tot)
        xc = float(np.dot(f.sum(axis=0), np.arange(nx)) / tot)
        if yc < 0 or yc >= ny or xc < 0 or xc >= nx:
            yc, xc = ny / 2.0, nx / 2.0
            self.flag = 2
        self.centroid = np.array([xc, yc])
        if self.img[int(yc), int(xc)] == 0:
            self.flag = 2  # centroid masked
        iy, ix = np.argwhere(self.no_bg == np.max(self.no_bg))[0]
        self.brightest = np.array([ix, iy], dtype=float)
        self.diag = math.hypot(nx, ny)
        self.img64 = self.img.astype(float)
        self.flat = self.img64.ravel()
        self.unmasked = (~self.mask).astype(float).ravel()

        self._skybox()
        values = (self.flat, self.unmasked)
        circ = _EllipseOverlap(self.shape, xc, yc, values=values)
        self.rpetro_circ_centroid = self._rpetro(circ, self.diag)
        self.center = center = self._asymmetry_center()
        cov = self._covariance(center)
        self.elongation, self.orientation = elong, theta = _elongation_orientation(cov)
        ell = _EllipseOverlap(self.shape, center[0], center[1], elong, theta, values=values)
        self.rpetro_ellip = rpetro_ellip = self._rpetro(ell, self.diag * elong)
        self.segmap_gini = segmap = self._segmap_gini(rpetro_ellip, elong, theta)
        self.gini = self._gini(segmap)
        self.m20 = self._m20(segmap)
        if self.sky_mean is not None and abs(self.sky_mean) > self.sky_sigma:
            self.flag = 2  # not background-subtracted

    def _skybox(self):
        bad = ((self.seg != 0) | self.user_mask).astype(np.int64)
        ny, nx = bad.shape
        integral = np.zeros((ny + 1, nx + 1), dtype=np.int64)
        integral[1:, 1:] = bad.cumsum(0).cumsum(1)
        size = self.skybox_size
        self.sky_mean = self.sky_sigma = None
        self.sky_asym = -99.0
        while True:
            ni, nj = ny - size, nx - size
            if ni > 0 and nj > 0:
                s = (integral[size : size + ni, size : size + nj] - integral[:ni, size : size + nj]
                     - integral[size : size + ni, :nj] + integral[:ni, :nj])  # fmt: skip
                hits = np.flatnonzero(s.ravel() == 0)
                if hits.size:
                    i, j = divmod(int(hits[0]), nj)
                    bkg = self.img[i : i + size, j : j + size]
                    self.sky_mean = float(np.mean(bkg))
                    self.sky_sigma = float(np.std(bkg))
                    self.sky_asym = float(np.sum(np.abs(bkg[::-1, ::-1] - bkg)) / float(bkg.size))
                    return
            if size <= 2:
                self.flag = 2  # skybox not found
                return
            size //= 2

    def _petro(self, a, geom):
        """statmorph's Petrosian function at semi-major axis ``a``."""
        half = 0.5 * self.annulus_width
        (s_out, area_out), (s_in, area_in), (s_ap, area_ap) = geom.sums(a + half, a - half, a)
        ann_area = area_out - area_in
        ann = abs((s_out - s_in) / ann_area) if ann_area else 0.0
        ap = abs(s_ap / area_ap) if area_ap else 0.0
        if ap == 0:
            self.flag = 2
            ratio = float(ann != 0)
        else:
            ratio = ann / ap
        return ratio - self.eta

    def _rpetro(self, geom, outer):
        """statmorph's Petrosian radius search, skipping exact evaluations that cannot matter.

        statmorph walks a 100-point grid until the Petrosian function first
        turns non-positive, then refines with ``brentq``.  A cheap approximation
        of the function on the whole grid tells which grid points are safely
        positive; only the others are evaluated exactly.  Should the
        approximation ever be wrong, brentq's bracket check fails and the exact
        walk is redone.
        """
        grid = np.linspace(self.annulus_width, outer, 100)
        try:
            safe = (self._petro_approx(geom, grid) > self.approx_margin) & (grid >= self.approx_min_radius)
            return self._rpetro_walk(geom, grid, safe)
        except ValueError:
            return self._rpetro_walk(geom, grid, np.zeros(grid.size, dtype=bool))

    def _rpetro_walk(self, geom, grid, safe):
        r_min = r_max = None
        for k, r in enumerate(grid):
            val = 1.0 if safe[k] else self._petro(r, geom)
            if val == 0:
                return r
            if val > 0:
                r_min = r
            else:
                if r_min is None:
                    self.flag = 2
                    return grid[0]
                r_max = r
                break
        if r_max is None:
            self.flag = 2
            return grid[-1]
        return opt.brentq(self._petro, r_min, r_max, args=(geom,), xtol=1e-6)

    def _petro_approx(self, geom, grid):
        half = 0.5 * self.annulus_width
        s_out, a_out = geom.approx_sums(grid + half)
        s_in, a_in = geom.approx_sums(grid - half)
        s_ap, a_ap = geom.approx_sums(grid)
        with np.errstate(invalid="ignore", divide="ignore"):
            ann = np.abs((s_out - s_in) / (a_out - a_in))
            ap = np.abs(s_ap / a_ap)
            ratio = ann / ap
        return np.where(np.isfinite(ratio), ratio - self.eta, -np.inf)

    def _asymmetry_prep(self):
        ny, nx = self.shape
        pad = max(ny, nx) + 2
        self.pad = pad
        self.padded = np.zeros((ny + 2 * pad, nx + 2 * pad))
        self.padded[pad : pad + ny, pad : pad + nx] = self.img64
        self.absimg = np.abs(self.img64)
        self.has_mask = bool(self.mask.any())
        if self.has_mask:
            self.padded_mask = np.zeros(self.padded.shape, dtype=bool)
            self.padded_mask[pad : pad + ny, pad : pad + nx] = self.mask

    def _asymmetry(self, center):
        ny, nx = self.shape
        cx, cy = float(center[0]), float(center[1])
        if cx < 0 or cx >= nx or cy < 0 or cy >= ny:
            self.flag = max(self.flag, 1)
            return 100.0
        r = self.petro_extent_cas * self.rpetro_circ_centroid
        (sy, sx), w = _circle_weights(self.shape, cx, cy, r)
        image = self.img64[sy, sx]
        rot = _rotate180(self.padded, self.pad, cx, cy, sy, sx)
        if self.has_mask:
            msym = self.mask[sy, sx] | _rotate180_mask(self.padded_mask, self.pad, cx, cy, sy, sx)
            w = np.where(msym, 0.0, w)  # masked pixels add nothing to any of the sums
        area = float(w.sum())
        abs_sum = float(np.vdot(w, self.absimg[sy, sx]))
        rot -= image
        abs_diff = float(np.vdot(w, np.abs(rot, out=rot)))
        if abs_sum == 0.0:
            self.flag = max(self.flag, 1)
            return 100.0
        if self.sky_asym == -99.0:
            return abs_diff / abs_sum
        return (abs_diff - area * self.sky_asym) / abs_sum

    def _asymmetry_center(self):
        self._asymmetry_prep()
        centroid = self.centroid
        center = opt.fmin(self._asymmetry, centroid, xtol=self.xtol_center, disp=False)
        dist = self.petro_fraction_cas * self.rpetro_circ_centroid
        if np.linalg.norm(center - centroid) > dist:
            self.flag = max(self.flag, 1)
            center = opt.fmin(self._asymmetry, self.brightest, xtol=self.xtol_center, disp=False)
            if np.linalg.norm(center - self.brightest) > dist:
                self.flag = 2
                center = centroid
        if self.img[int(center[1]), int(center[0])] == 0:
            self.flag = 2  # asymmetry centre masked
        return center

    def _covariance(self, center):
        f = self.no_bg.astype(float)
        ny, nx = f.shape
        dx = np.arange(nx) - center[0]
        dy = np.arange(ny) - center[1]
        m00 = f.sum()
        x2 = float(np.dot(f.sum(axis=0), dx * dx)) / m00
        y2 = float(np.dot(f.sum(axis=1), dy * dy)) / m00
        xy = float(dy @ f @ dx) / m00
        if x2 <= 0 or y2 <= 0:
            self.flag = 2
        rho = 1.0 / 12.0
        while abs(x2 * y2 - xy**2) < rho**2:
            x2 += (x2 >= 0) * rho - (x2 < 0) * rho
            y2 += (y2 >= 0) * rho - (y2 < 0) * rho
        return np.array([[x2, xy], [xy, y2]])

    def _segmap_gini(self, rpetro_ellip, elong, theta):
        sigma = self.petro_fraction_gini * rpetro_ellip
        smooth = ndi.gaussian_filter(self.img, sigma, mode="constant", cval=0.0)
        a_in = rpetro_ellip - 0.5 * self.annulus_width
        a_out = rpetro_ellip + 0.5 * self.annulus_width
        geom = _EllipseOverlap(
            self.shape, self.centroid[0], self.centroid[1], elong, theta, values=(smooth,), presort=False
        )
        (s_out,), (s_in,) = geom.sums(a_out, max(a_in, 0.0))
        area = math.pi * (a_out * a_out - a_in * a_in) / elong
        above = smooth >= (s_out - s_in) / area
        labeled, n = ndi.label(above, structure=np.ones((3, 3), dtype=bool))
        if n == 0 or above.all():
            self.flag = 2
            return above
        if n > 1:
            self.flag = max(self.flag, 1)
            ic, jc = np.argwhere(smooth == np.max(smooth))[0]
            return labeled == labeled[ic, jc]
        return above

    def _gini(self, segmap):
        vals = np.sort(np.abs(self.img.ravel()[segmap.ravel()]))
        n = len(vals)
        if n <= 1 or np.sum(vals) == 0:
            self.flag = 2
            return float("nan")
        idx = np.arange(1, n + 1)
        return float(np.sum((2 * idx - n - 1) * vals) / (float(n - 1) * np.sum(vals)))

    def _m20(self, segmap):
        if np.sum(segmap) == 0:
            return float("nan")
        image = np.float64(np.where(segmap, self.img, 0.0))
        ny, nx = image.shape
        m00 = image.sum()
        if m00 <= 0:
            self.flag = 2
            return float("nan")
        yc = float(np.dot(image.sum(axis=1), np.arange(ny)) / m00)
        xc = float(np.dot(image.sum(axis=0), np.arange(nx)) / m00)
        r2 = (np.arange(nx)[None, :] - xc) ** 2 + (np.arange(ny)[:, None] - yc) ** 2
        second_tot = float(np.sum(image * r2))
        srt = np.sort(image.ravel())
        frac = np.cumsum(srt) / np.sum(srt)
        top = srt[frac >= 0.8]
        if len(top) == 0:
            self.flag = 2
            return float("nan")
        second_20 = float(np.sum(np.where(image >= top[0], image, 0.0) * r2))
        if second_20 <= 0 or second_tot <= 0:
            self.flag = 2
            return float("nan")
        return float(np.log10(second_20 / second_tot))


def _rotate180(padded, pad, cx, cy, sy, sx):
    """Bilinear 180° rotation about (cx, cy) (skimage ``rotate(..., 180, center=...)``), on a box."""
    kx, ky = math.floor(2 * cx), math.floor(2 * cy)
    fx, fy = 2 * cx - kx, 2 * cy - ky
    # source pixel of output (y, x) is (ky - y + fy, kx - x + fx)
    y0, y1, x0, x1 = sy.start, sy.stop, sx.start, sx.stop
    rows = slice(pad + ky - (y1 - 1), pad + ky - y0 + 2)
    cols = slice(pad + kx - (x1 - 1), pad + kx - x0 + 2)
    block = padded[rows, cols][::-1, ::-1]
    out = block[1:, 1:] * ((1 - fy) * (1 - fx))  # source (ky - y, kx - x)
    out += block[1:, :-1] * ((1 - fy) * fx)  # (ky - y, kx - x + 1)
    out += block[:-1, 1:] * (fy * (1 - fx))  # (ky - y + 1, kx - x)
    out += block[:-1, :-1] * (fy * fx)  # (ky - y + 1, kx - x + 1)
    return out


def _rotate180_mask(padded_mask, pad, cx, cy, sy, sx):
    """Nearest-neighbour 180° rotation of a boolean mask about (cx, cy), on a box."""
    ky, kx = math.floor(2 * cy + 0.5), math.floor(2 * cx + 0.5)
    rows = slice(pad + ky - (sy.stop - 1), pad + ky - sy.start + 1)
    cols = slice(pad + kx - (sx.stop - 1), pad + kx - sx.start + 1)
    return padded_mask[rows, cols][::-1, ::-1]


def _elongation_orientation(cov):
    eig = np.sort(np.abs(np.linalg.eigvals(cov)))[::-1]
    elong = math.sqrt(abs(eig[0])) / math.sqrt(abs(eig[1]))
    x2, xy, _, y2 = cov.flat
    return elong, 0.5 * math.atan2(2.0 * xy, x2 - y2)


def _checked_labels(labels, segmaps):
    """One label per segmap, each in its segmap (or 0)."""
    if segmaps is None:  # the labels of a segmentation made here are not known to the caller
        raise ValueError("labels= names segments of segmaps=: give the segmentation maps they label, or "
                         "neither (the central segment of each image's own segmentation is measured)")
    labels = np.broadcast_to(np.asarray(labels, dtype=int), (len(segmaps),))
    absent = [i for i, (label, seg) in enumerate(zip(labels, segmaps)) if label != 0 and not np.any(seg == label)]
    if absent:
        raise ValueError(f"label {int(labels[absent[0]])} is not in segmap {absent[0]} "
                         f"({len(absent)} image(s) with an absent label)")
    return labels


def gini_m20(images, segmaps=None, *, labels=None, mask=None, progress=False):
    """Gini and M20 of many galaxies, as statmorph defines them, fast.

    Follows :class:`statmorph.SourceMorphology` exactly for Gini and M20
    (same stamp, outlier rejection, Petrosian radii, asymmetry centre and
    smoothed "Gini segmap"; M20 about the flux centroid of that segmap, the
    point that minimises the total second moment) and skips everything else,
    running ~25 times faster than ``statmorph.SourceMorphology``
    (benchmarks/metrics_speed.py).

    Parameters
    ----------
    images : array (n, ny, nx) or (ny, nx), or torch tensor
        Background-subtracted images.
    segmaps : int array like ``images``, optional
        Detection segmentation maps (0 = background); made with :func:`segment`
        when omitted.
    labels : int or sequence of int, optional
        Label of the galaxy in each of ``segmaps`` (default: the central segment); 0
        measures nothing in that image.
    mask : bool array like ``images``, optional
        Bad pixels.  Non-finite pixels are always masked.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    GiniM20
        ``(gini, m20, flag)`` arrays of length ``n``.  ``flag`` is statmorph's
        flag as set along the Gini/M20 chain (and by its sky test); it omits
        statmorph's Gini-vs-MID segmap comparison (flag 1) and failures of
        statistics not computed here.

    Raises
    ------
    ValueError
        Shapes that differ from the images', or ``labels`` without ``segmaps`` or absent
        from their segmap.

    Examples
    --------
    >>> import numpy as np
    >>> y, x = np.mgrid[:64, :64]
    >>> disk = np.exp(-np.hypot(x - 32, y - 32) / 6.0)
    >>> point = np.exp(-np.hypot(x - 32, y - 32) / 1.5)
    >>> seg = (disk > 1e-3).astype(int)
    >>> res = gini_m20(np.stack([disk, point]), np.stack([seg, (point > 1e-3).astype(int)]))
    >>> bool(res.gini[1] > res.gini[0])
    True
    """
    arr = images.detach().cpu().numpy() if hasattr(images, "detach") else np.asarray(images)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"images must have shape (n, ny, nx) or (ny, nx), got {arr.shape}")
    n = arr.shape[0]
    if n == 0:
        raise ValueError("images is empty: nothing to measure")
    if segmaps is not None:
        seg = segmaps.detach().cpu().numpy() if hasattr(segmaps, "detach") else np.asarray(segmaps)
        seg = seg[None] if seg.ndim == 2 else seg
        if seg.shape != arr.shape:
            raise ValueError(f"segmaps have shape {seg.shape}, expected the images' shape {arr.shape}")
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        mask = mask[None] if mask.ndim == 2 else mask
        if mask.shape != arr.shape:
            raise ValueError(f"mask has shape {mask.shape}, expected the images' shape {arr.shape}")
    if labels is not None:
        labels = _checked_labels(labels, seg if segmaps is not None else None)
    gini = np.full(n, np.nan)
    m20 = np.full(n, np.nan)
    flag = np.full(n, 4, dtype=np.int16)
    it = range(n)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="Gini/M20", unit="img")
    for i in it:
        image = arr[i] if arr.dtype.kind == "f" else arr[i].astype(float)
        m = mask[i] if mask is not None else None
        if segmaps is None:
            s = segment(image if m is None else np.ma.array(image, mask=m), background=None)
            if s.segmap is None:
                continue
            sm, lab = np.asarray(s.segmap.data), s.label
        else:
            sm = seg[i]
            lab = int(labels[i]) if labels is not None else central_label(sm, image)
        if lab == 0 or not np.any(sm == lab):
            continue
        with np.errstate(invalid="ignore", divide="ignore"):
            res = _FastGiniM20(image, sm, lab, m)
        gini[i], m20[i], flag[i] = res.gini, res.m20, res.flag
    return GiniM20(gini, m20, flag)
