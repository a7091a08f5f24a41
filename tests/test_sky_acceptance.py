"""Issue 15's acceptance test: survey files in their own units through ``bandsynth predict --reproject-to Ks``.

A GALEX-like NUV intensity map (counts/s, 1.5"/pixel, ``TELESCOP = 'GALEX'``, no BUNIT) and a
2MASS-like Ks Atlas image (DN with a Vega ``MAGZP``, 1.0"/pixel) are written from the native
images of survey-layer mock galaxies (`bandsynth.datasets.mock.observe_galaxy`: each band at its
survey's pixel scale, PSF, depth, sky residual and masked pixels, among neighbours and stars);
the shipped ``nuv_k_to_r`` model predicts SDSS r on the Ks grid, and the r flux inside the
galaxy's footprint is compared with the survey layer's noise-free truth.

The galaxies are new (a mock universe of another seed than the model's training set) and as
bright as the galaxies 2MASS catalogues (Ks < 13.5 Vega, about r < 16), the model's training range.
"""

import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from bandsynth.cli import main
from bandsynth.datasets.mock import galaxy_seed, observe_galaxy
from bandsynth.morphology import segment
from bandsynth.zeropoints import GALEX_ZEROPOINTS, nanomaggy_factor

MODEL = "nuv_k_to_r"
KS_MAGZP = 20.0  # Vega; AB 21.85
KS_VEGA_TO_AB = 1.85
#: New galaxies (seed 7's universe) at r magnitudes of the 2MASS extended-source catalogue.
GALAXIES = ((galaxy_seed(7, 0), 14.0), (galaxy_seed(7, 1), 14.8), (galaxy_seed(7, 2), 15.5))


def _write_inputs(obs, folder):
    """The native NUV image as GALEX counts/s and the native Ks image as 2MASS DN; masked pixels NaN."""
    paths = {}
    for band, name in (("NUV", "nuv.fits"), ("Ks", "ks.fits")):
        native = obs.native[band]
        image = np.array(native[band].data, dtype=np.float64)
        if native[band].mask is not None:
            image[np.asarray(native[band].mask, dtype=bool)] = np.nan
        header = native.wcs.to_header()
        if band == "NUV":  # counts/s, recognised from TELESCOP; no BUNIT
            image /= nanomaggy_factor(GALEX_ZEROPOINTS["NUV"])
            header["TELESCOP"] = "GALEX"
        else:  # DN with the Vega zero point of the 2MASS Atlas images
            image /= nanomaggy_factor(KS_MAGZP + KS_VEGA_TO_AB)
            header["BUNIT"], header["MAGZP"], header["TELESCOP"] = "DN", KS_MAGZP, "2MASS"
        paths[band] = folder / name
        fits.PrimaryHDU(image.astype(np.float32), header).writeto(paths[band])
    return paths


def _footprint_dmag(prediction_file, obs):
    """``-2.5 log10(predicted / true r flux)`` inside the truth's segmentation footprint of the galaxy."""
    truth = obs.truth["r"]
    with fits.open(prediction_file) as hdul:
        pred = np.asarray(hdul[0].data, dtype=np.float64)
        wcs = WCS(hdul[0].header)
    # the Ks grid is the common grid's, with a border of whole pixels: find the offset from the WCS
    x0, y0 = wcs.world_to_pixel(truth.wcs.pixel_to_world(0, 0))
    ix, iy = int(round(float(x0))), int(round(float(y0)))
    assert abs(float(x0) - ix) < 1e-3 and abs(float(y0) - iy) < 1e-3
    ny, nx = truth.data.shape
    pred = pred[iy:iy + ny, ix:ix + nx]
    true = np.asarray(truth.data, dtype=np.float64)
    seg = segment(true)
    inside = seg.segmap.data == seg.label
    return -2.5 * np.log10(np.nansum(pred[inside]) / np.sum(true[inside]))


@pytest.mark.xfail(strict=True, reason=(
    "nuv_k_to_r v7 (v6, 32 epochs on 960 survey-layer galaxies, + 16 epochs with the photometric term; CPU) misses "
    "the truth by +0.43, -0.60 and +0.34 mag on these three galaxies (v6: +0.23, -0.81, +0.14); median |delta mag| "
    "0.22 on its 120 test galaxies (v6 0.26, linear colour model 0.51), benchmarks/photometry.py --models "
    "nuv_k_to_r. In the second and third galaxies the Ks sky residual sums to 1.2 and 1.0 times the galaxy's own Ks "
    "flux over its footprint (the first: 0.05), and the second is 0.56 mag redder in r - Ks than the others"))
def test_galex_and_2mass_files_to_sdss_r_within_a_tenth_of_a_magnitude(tmp_path):
    dmags = []
    for k, (seed, r_mag) in enumerate(GALAXIES):
        obs = observe_galaxy(seed, "galex_sdss_2mass", bands=["NUV", "r", "Ks"], size=64, pixel_scale=1.0,
                             r_mag=r_mag)
        folder = tmp_path / f"g{k}"
        folder.mkdir()
        files = _write_inputs(obs, folder)
        out = folder / "r.fits"
        with warnings.catch_warnings():  # masked (NaN) input pixels and uncovered edges are warned about
            warnings.simplefilter("ignore")
            code = main(["predict", "--model", MODEL, "--input", f"NUV={files['NUV']}", "--input",
                         f"Ks={files['Ks']}", "--reproject-to", "Ks", "-o", str(out), "-q"])
        assert code == 0
        dmags.append(_footprint_dmag(out, obs))
    assert np.max(np.abs(dmags)) < 0.1, f"r flux misses the truth by {np.round(dmags, 3).tolist()} mag"
