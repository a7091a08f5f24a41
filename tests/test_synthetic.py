"""Tests of bandsynth.synthetic.SyntheticBand and its FITS archive format."""

import json
import os
import shutil
import stat
import subprocess
import sys
import types
import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import CCDData, StdDevUncertainty, UnknownUncertainty, VarianceUncertainty
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs import WCS

from bandsynth.stack import BandStack
from bandsynth.synthetic import PROVENANCE_KEYS, SyntheticBand, make_provenance
from bandsynth.units import nanomaggy

SHA = "ab" * 32


def tan_wcs(n, scale=0.396):
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.cunit = ["deg", "deg"]
    w.wcs.crval = [185.7, 15.8]
    w.wcs.crpix = [(n + 1) / 2.0, (n + 1) / 2.0]
    w.wcs.cdelt = [-scale / 3600.0, scale / 3600.0]
    w.wcs.radesys = "ICRS"
    return w


def provenance(**changes):
    prov = {
        "bandsynth_version": "0.1.0",
        "model": "nuv_k_to_r_paper",
        "weights_sha256": SHA,
        "band": "r",
        "inputs": [
            {"band": "NUV", "file": "/data/survey/galaxies/g123_galex_nuv_intensity_map.fits", "checksum": "0f" * 32},
            {"band": "Ks", "file": "g123_k_Ångström.fits", "checksum": "1e" * 32},
        ],
        "date": "2024-05-01T12:34:56+00:00",
        "scaling": {
            "reference_flux": 12.375,
            "reference_method": {"percentile": 99.5},
            "unit": "nanomaggy",
            "NUV": {"softening": 0.002, "maximum": 0.1},
            "Ks": {"softening": 0.02, "maximum": 1.0},
            "r": {"softening": 0.01, "maximum": 0.5},
        },
        "uncertainty_method": "Laplace scale of the network, calibrated; inputs' noise by Monte Carlo (8 draws)",
        "history": [
            "Predicted r from NUV + Ks with bandsynth model nuv_k_to_r_paper.",
            "It's a test: quotes ' and \" survive.",
        ],
        "extra_note": {"nested": [1, 2.5, None, True]},
    }
    prov.update(changes)
    return prov


@pytest.fixture
def synth():
    rng = np.random.default_rng(42)
    data = rng.normal(10.0, 3.0, (24, 20)).astype(np.float32)
    sigma = rng.uniform(0.1, 1.0, (24, 20)).astype(np.float32)
    mask = np.zeros((24, 20), bool)
    mask[3, 4] = mask[10, 11] = True
    data[3, 4] = np.nan  # a bad pixel that is masked
    w = tan_wcs(24)
    w.wcs.crpix = [10.5, 12.5]
    return SyntheticBand(
        data, uncertainty=StdDevUncertainty(sigma), mask=mask, wcs=w, unit=nanomaggy, provenance=provenance()
    )


def bits(a):
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


# ---------------------------------------------------------------------- construction
def test_construction_and_properties(synth):
    assert synth.band.name == "r" and synth.unit == nanomaggy
    assert set(PROVENANCE_KEYS) <= set(synth.provenance)
    assert synth.provenance["extra_note"] == {"nested": [1, 2.5, None, True]}
    assert synth.provenance["inputs"][1]["band"] == "Ks"
    assert isinstance(synth.uncertainty, StdDevUncertainty)
    assert repr(synth) == (
        "<SyntheticBand r: 24 x 20 pixels, unit nanomaggy, model 'nuv_k_to_r_paper', uncertainty yes, 2 masked pixel(s)>"
    )
    # band= alone gives a complete default provenance.
    sb = SyntheticBand(np.ones((4, 4)), unit="Jy", band="sdss_g", uncertainty=np.full((4, 4), 0.5))
    assert sb.band.name == "g" and sb.provenance["band"] == "g" and set(sb.provenance) == set(PROVENANCE_KEYS)
    assert isinstance(sb.uncertainty, StdDevUncertainty)
    # Other uncertainty types are converted to a standard deviation.
    sb = SyntheticBand(np.ones((4, 4)), unit="Jy", band="g", uncertainty=VarianceUncertainty(np.full((4, 4), 4.0)))
    np.testing.assert_array_equal(sb.uncertainty.array, 2.0)
    # meta["provenance"] works as well as provenance=.
    sb = SyntheticBand(np.ones((4, 4)), unit="Jy", meta={"provenance": make_provenance("FUV"), "other": 1})
    assert sb.band.name == "FUV" and sb.meta["other"] == 1


def test_constructor_validation():
    img = np.ones((4, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="SyntheticBand needs its band"):
        SyntheticBand(img, unit="Jy")
    with pytest.raises(ValueError, match="unknown band 'Q'"):
        SyntheticBand(img, unit="Jy", band="Q")
    with pytest.raises(ValueError, match="band='g' disagrees with the provenance band 'r'"):
        SyntheticBand(img, unit="Jy", band="g", provenance={"band": "r"})
    with pytest.raises(ValueError, match="SyntheticBand needs a unit"):
        SyntheticBand(img, band="r")
    with pytest.raises(TypeError, match="floating-point array, got int64"):
        SyntheticBand(np.ones((4, 4), dtype=np.int64), unit="Jy", band="r")
    with pytest.raises(ValueError, match=r"2-D image, got shape \(2, 4, 4\)"):
        SyntheticBand(np.ones((2, 4, 4)), unit="Jy", band="r")
    with pytest.raises(ValueError, match=r"mask has shape \(3, 3\)"):
        SyntheticBand(img, unit="Jy", band="r", mask=np.zeros((3, 3), bool))
    with pytest.raises(TypeError, match="mask must be a boolean array"):
        SyntheticBand(img, unit="Jy", band="r", mask=np.zeros((4, 4), float))
    with pytest.raises(ValueError, match=r"uncertainty has shape \(3, 3\)"):
        SyntheticBand(img, unit="Jy", band="r", uncertainty=np.ones((3, 3)))
    with pytest.raises(ValueError, match="uncertainty .* negative"):
        SyntheticBand(img, unit="Jy", band="r", uncertainty=-img)
    with pytest.raises(TypeError, match="standard deviation"):
        SyntheticBand(img, unit="Jy", band="r", uncertainty=UnknownUncertainty(img))
    with pytest.raises(TypeError, match="WCS"):
        SyntheticBand(img, unit="Jy", band="r", wcs="RA---TAN")
    with pytest.raises(ValueError, match="wcs must have 2 pixel axes"):
        SyntheticBand(img, unit="Jy", band="r", wcs=WCS(naxis=3))
    with pytest.raises(ValueError, match="provenance is given twice"):
        SyntheticBand(img, unit="Jy", provenance={"band": "r"}, meta={"provenance": {"band": "r"}})


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"inputs": "NUV"}, TypeError, r"provenance\['inputs'\] must be a list"),
        ({"inputs": [{"band": "NUV", "file": "a.fits"}]}, ValueError, r"inputs'\]\[0\] lacks checksum"),
        ({"inputs": [{"band": "NUV", "file": 3, "checksum": ""}]}, TypeError, r"\[0\]\['file'\] must be a string"),
        ({"weights_sha256": "abc"}, ValueError, "64 hexadecimal digits"),
        ({"date": "yesterday"}, ValueError, "ISO 8601 date, got 'yesterday'"),
        ({"model": None}, TypeError, r"provenance\['model'\] must be a string"),
        ({"history": "one line"}, TypeError, "list of strings"),
        ({"scaling": [1, 2]}, TypeError, r"provenance\['scaling'\] must be a dict"),
        ({"scaling": {"reference_flux": float("nan")}}, ValueError, "finite numbers"),
        ({"scaling": {"reference_flux": object()}}, TypeError, "JSON-serialisable"),
    ],
)
def test_provenance_validation(changes, error, match):
    with pytest.raises(error, match=match):
        SyntheticBand(np.ones((4, 4)), unit="Jy", provenance=provenance(**changes))


def test_provenance_is_plain_json():
    prov = provenance(scaling={"reference_flux": np.float32(2.5), "r": {"softening": np.float64(0.1), "maximum": 1}})
    prov["history"] = ("a", "b")
    sb = SyntheticBand(np.ones((4, 4)), unit="Jy", provenance=prov)
    ref = sb.provenance["scaling"]["reference_flux"]
    assert ref == 2.5 and type(ref) is float
    assert sb.provenance["history"] == ["a", "b"]


def test_nonfinite_unmasked_pixels_are_masked_with_warning():
    img = np.ones((4, 4), dtype=np.float32)
    img[1, 2] = np.inf
    with pytest.warns(AstropyUserWarning, match="synthetic band 'r': 1 pixel"):
        sb = SyntheticBand(img, unit="Jy", band="r")
    assert sb.mask[1, 2] and sb.mask.sum() == 1 and np.isinf(sb.data[1, 2])


# ---------------------------------------------------------------------- FITS round trip
def test_write_read_round_trip_is_exact(tmp_path, synth):
    path = tmp_path / "g123_r_synth.fits"
    synth.write(path)
    back = SyntheticBand.read(path)
    assert back.data.dtype == np.float32
    np.testing.assert_array_equal(bits(back.data), bits(synth.data))  # bit-exact, NaN included
    np.testing.assert_array_equal(bits(back.uncertainty.array), bits(synth.uncertainty.array))
    np.testing.assert_array_equal(back.mask, synth.mask)
    assert back.unit == synth.unit == nanomaggy
    assert back.band == synth.band
    assert back.provenance == synth.provenance
    yy, xx = np.mgrid[:24, :20]
    sep = back.wcs.pixel_to_world(xx, yy).separation(synth.wcs.pixel_to_world(xx, yy))
    assert float(np.max(sep.to_value(u.arcsec))) < 1e-9
    # A second round trip writes the same file contents (except checksums/dates, which are equal too).
    path2 = tmp_path / "again.fits"
    back.write(path2)
    assert SyntheticBand.read(path2).provenance == synth.provenance


def test_a_gz_name_is_written_gzip_compressed_by_both_writers(tmp_path, synth):
    # as astropy's writeto does: a file named .gz that is not gzip would fail `gunzip` and other tools
    from bandsynth.fits_io import synthetic_band_writer

    plain = tmp_path / "g123_r_synth.fits"
    synth.write(plain)
    whole = tmp_path / "g123_r_synth.fits.gz"
    synth.write(whole)
    strips = tmp_path / "strips_r_synth.fits.gz"
    ny = synth.data.shape[0]
    with synthetic_band_writer(strips, synth.data.shape) as out:
        for row in range(0, ny, 7):
            rows = slice(row, min(row + 7, ny))
            out.write_rows(row, synth.data[rows], sigma=synth.uncertainty.array[rows], mask=synth.mask[rows])
        out.finish(unit=synth.unit, band=synth.band, provenance=synth.provenance, wcs=synth.wcs)
    for path in (whole, strips):
        assert path.read_bytes()[:2] == b"\x1f\x8b"  # gzip's magic number
        with fits.open(path, checksum=True) as hdul:
            assert all(h.verify_checksum() == 1 and h.verify_datasum() == 1 for h in hdul)
        np.testing.assert_array_equal(bits(SyntheticBand.read(path).data), bits(synth.data))
    assert sorted(p.name for p in tmp_path.iterdir()) == [plain.name, whole.name, strips.name]  # no temporaries


def test_round_trip_without_optional_parts(tmp_path):
    sb = SyntheticBand(np.arange(12, dtype=np.float32).reshape(3, 4), unit=u.MJy / u.sr, band="FUV")
    sb.write(tmp_path / "bare.fits")
    back = SyntheticBand.read(tmp_path / "bare.fits")
    assert back.wcs is None and back.uncertainty is None and back.mask is None
    assert back.unit == u.MJy / u.sr and back.provenance == sb.provenance
    with fits.open(tmp_path / "bare.fits") as hdul:
        assert [h.name for h in hdul] == ["PRIMARY"]


def test_composite_nanomaggy_unit_round_trips(tmp_path):
    sb = SyntheticBand(np.eye(3, dtype=np.float32), unit=nanomaggy / u.arcsec**2, band="r")
    sb.write(tmp_path / "sb.fits")
    assert SyntheticBand.read(tmp_path / "sb.fits").unit == nanomaggy / u.arcsec**2


def test_fits_header_contract(tmp_path, synth):
    path = tmp_path / "g123_r_synth.fits"
    synth.write(path)
    with fits.open(path) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "UNCERT", "MASK"]
        h = hdul[0].header
        assert hdul[0].data.dtype == np.dtype(">f4")
        assert h["BUNIT"] == "nanomaggy" and h["CTYPE1"] == "RA---TAN" and h["CTYPE2"] == "DEC--TAN"
        assert h["BANDSYN"] == "0.1.0" and h["BSMODEL"] == "nuv_k_to_r_paper" and h["BSSHA256"] == SHA
        assert h["BSBAND"] == h["FILTER"] == "r" and h["DATE"] == "2024-05-01T12:34:56"
        assert (h["BSIN1"], h["BSINF1"], h["BSINS1"]) == ("NUV", "g123_galex_nuv_intensity_map.fits", "0f" * 32)
        assert h["BSIN2"] == "Ks" and h["BSINF2"] == "g123_k_Angstrom.fits"  # readable ASCII; exact name in BSPROV
        assert h["BSREF"] == 12.375
        assert [(h[f"BSSC{n}"], h[f"BSSOFT{n}"], h[f"BSMAX{n}"]) for n in (1, 2, 3)] == [
            ("NUV", 0.002, 0.1), ("Ks", 0.02, 1.0), ("r", 0.01, 0.5)
        ]
        assert h["BSUNCMET"].startswith("Laplace scale of the network")
        assert h["LONGSTRN"] == "OGIP 1.0" and "CHECKSUM" in h and "DATASUM" in h
        history = " ".join(str(x) for x in h["HISTORY"])
        assert all(len(str(x)) <= 70 for x in h["HISTORY"])
        assert "Synthetic r image predicted by bandsynth 0.1.0 with model nuv_k_to_r_paper from NUV" in history
        assert "Predicted r from NUV + Ks" in history and "BSPROV" in history
        u_hdr = hdul["UNCERT"].header
        assert u_hdr["UTYPE"] == "StdDevUncertainty" and u_hdr["BUNIT"] == "nanomaggy"
        assert "Pixel errors are correlated: do not add sigma**2 over an aperture" in str(u_hdr["COMMENT"])
        assert hdul["UNCERT"].data.dtype == np.dtype(">f4")
        assert hdul["MASK"].data.dtype == np.uint8 and int(hdul["MASK"].data.sum()) == 2


def test_ccddata_reads_the_file(tmp_path, synth):
    path = tmp_path / "g123_r_synth.fits"
    synth.write(path)
    ccd = CCDData.read(path)
    np.testing.assert_array_equal(bits(ccd.data), bits(synth.data))
    assert ccd.header["BUNIT"] == "nanomaggy"
    assert isinstance(ccd.uncertainty, StdDevUncertainty)
    np.testing.assert_array_equal(ccd.uncertainty.array, synth.uncertainty.array)
    np.testing.assert_array_equal(ccd.mask, synth.mask)
    assert ccd.wcs is not None and ccd.wcs.wcs.ctype[0] == "RA---TAN"
    # With a unit astropy's registry knows, the unit itself round-trips through CCDData.
    jy = SyntheticBand(np.eye(3, dtype=np.float32), unit="Jy", band="g")
    jy.write(tmp_path / "jy.fits")
    assert CCDData.read(tmp_path / "jy.fits").unit == u.Jy
    # And a synthetic band can be an input of a stack again.
    stack = BandStack.from_fits({"r": path})
    assert stack.unit == nanomaggy and stack["r"].mask.sum() == 2


def test_a_file_changed_after_it_was_written_says_so(tmp_path, synth):
    # Pixels changed through CCDData and written again: astropy's "Checksum verification failed for HDU" said
    # nothing of what it means -- that the provenance read with them may not describe them.
    from astropy.utils.exceptions import AstropyUserWarning

    synth.write(tmp_path / "r.fits")
    ccd = CCDData.read(tmp_path / "r.fits")
    ccd.data = 2 * ccd.data
    ccd.write(tmp_path / "changed.fits")
    with pytest.warns(AstropyUserWarning, match=r"changed.fits' was changed after bandsynth wrote it \(its "
                                                r"CHECKSUM/DATASUM do not match\): its provenance \(BSPROV\) may "
                                                r"not describe these pixels") as record:
        SyntheticBand.read(tmp_path / "changed.fits")
    assert not [w for w in record if "verification failed" in str(w.message)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the file as written: no warning
        SyntheticBand.read(tmp_path / "r.fits")


def test_ccddata_and_synthetic_band_read_the_same_unit(tmp_path, synth):
    path = tmp_path / "g123_r_synth.fits"
    synth.write(path)
    ccd, back = CCDData.read(path), SyntheticBand.read(path)
    assert ccd.unit == back.unit == u.nmgy
    total = back.add(ccd)  # the same unit: the two add without a conversion error
    assert total.unit == u.nmgy
    np.testing.assert_array_equal(total.data[~synth.mask], 2 * synth.data[~synth.mask])
    assert (ccd.data * ccd.unit + back.data * back.unit).unit == u.nmgy


def test_fits_format_is_registered_with_astropy(tmp_path, synth):
    from astropy.io import registry

    from bandsynth import fits_io

    assert registry.get_reader("fits", SyntheticBand) is fits_io.read_synthetic_band
    assert registry.get_writer("fits", SyntheticBand) is fits_io.write_synthetic_band
    path = tmp_path / "g123_r_synth.fits"
    synth.write(path, format="fits")
    plain, named = SyntheticBand.read(path), SyntheticBand.read(path, format="fits")
    ccd = CCDData.read(path)
    for other in (named, ccd):
        np.testing.assert_array_equal(bits(other.data), bits(plain.data))
        np.testing.assert_array_equal(other.uncertainty.array, plain.uncertainty.array)
        np.testing.assert_array_equal(other.mask, plain.mask)
        assert other.unit == plain.unit == synth.unit
    assert named.provenance == plain.provenance == synth.provenance
    # the writer's options go through the registry; an existing file is kept without overwrite
    with pytest.raises(FileExistsError, match="already exists; pass overwrite=True"):
        synth.write(path, format="fits")
    synth.multiply(2).write(path, overwrite=True)
    np.testing.assert_array_equal(SyntheticBand.read(path).data[~synth.mask], 2 * synth.data[~synth.mask])
    # the functions themselves, and the file object the registry hands over
    fits_io.write_synthetic_band(synth, tmp_path / "direct.fits")
    with open(tmp_path / "direct.fits", "rb") as fh:
        assert fits_io.read_synthetic_band(fh).provenance == synth.provenance
    from astropy.io.registry import get_formats

    assert list(get_formats(SyntheticBand)["Format"]) == ["fits"]


def test_reading_a_file_that_is_not_fits(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a FITS file")
    with pytest.raises(Exception, match="[Ff]ormat could not be identified"):
        SyntheticBand.read(text)
    with pytest.raises(OSError):
        SyntheticBand.read(text, format="fits")


# ---------------------------------------------------------------------- atomic writing
def test_refuses_to_overwrite(tmp_path, synth):
    path = tmp_path / "out.fits"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match=r"out\.fits' already exists; pass overwrite=True"):
        synth.write(path)
    assert path.read_bytes() == b"precious"
    synth.write(path, overwrite=True)
    assert SyntheticBand.read(path).provenance == synth.provenance
    assert sorted(os.listdir(tmp_path)) == ["out.fits"]


def test_failed_write_leaves_no_partial_file(tmp_path, synth, monkeypatch):
    path = tmp_path / "out.fits"
    path.write_bytes(b"old contents")

    def broken_writeto(self, fileobj, **kwargs):
        fileobj.write(b"SIMPLE  =                    T" + b" " * 100)
        raise OSError("disk full")

    monkeypatch.setattr(fits.HDUList, "writeto", broken_writeto)
    with pytest.raises(OSError, match="disk full"):
        synth.write(path, overwrite=True)
    assert path.read_bytes() == b"old contents"
    assert sorted(os.listdir(tmp_path)) == ["out.fits"]  # the temporary file is gone
    with pytest.raises(OSError, match="disk full"):
        synth.write(tmp_path / "new.fits")
    assert sorted(os.listdir(tmp_path)) == ["out.fits"]


def test_written_file_has_normal_permissions(tmp_path, synth):
    synth.write(tmp_path / "a.fits")
    (tmp_path / "b.txt").write_text("x")
    mode = stat.S_IMODE(os.stat(tmp_path / "a.fits").st_mode)
    assert mode == stat.S_IMODE(os.stat(tmp_path / "b.txt").st_mode)


def test_read_and_write_errors(tmp_path, synth):
    with pytest.raises(FileNotFoundError, match="synthetic band file '.*nope.fits' not found"):
        SyntheticBand.read(tmp_path / "nope.fits")
    CCDData(np.eye(3), unit="Jy").write(tmp_path / "plain.fits")
    with pytest.raises(ValueError, match="not a bandsynth synthetic band"):
        SyntheticBand.read(tmp_path / "plain.fits")
    synth.write(tmp_path / "whole.fits")
    whole = (tmp_path / "whole.fits").read_bytes()
    for cut in (2880, len(whole) - 2880):  # in the header ("missing END card"), in the last extension's data
        (tmp_path / "short.fits").write_bytes(whole[:cut])  # (numpy's "buffer is too small for requested array")
        with pytest.raises(OSError, match=r"cannot read '.*short\.fits' as FITS: the file is truncated, damaged"):
            SyntheticBand.read(tmp_path / "short.fits")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        synth.write(tmp_path / "no_such_dir" / "x.fits")
    with pytest.raises(TypeError, match="path must be a str or os.PathLike"):
        synth.write(3)


# ---------------------------------------------------------------------- fitsverify
@pytest.mark.parametrize("variant", ["full", "bare"])
def test_fitsverify_accepts_the_file(tmp_path, synth, variant):
    if shutil.which("fitsverify") is None:
        pytest.skip("HEASARC fitsverify is not installed")
    sb = synth if variant == "full" else SyntheticBand(np.eye(5, dtype=np.float32), unit="Jy", band="u")
    path = tmp_path / f"{variant}.fits"
    sb.write(path)
    result = subprocess.run(["fitsverify", "-q", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "verification OK" in result.stdout  # no errors and no warnings



# ---------------------------------------------------------------------- writing in strips of rows
def assert_same_fits_file(written, streamed):
    """Same HDUs, header cards (but the checksums' time stamps), DATASUM and pixels; valid checksums."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a checksum that does not verify warns
        with fits.open(written, checksum=True) as a, fits.open(streamed, checksum=True) as b:
            assert [h.name for h in a] == [h.name for h in b]
            for ha, hb in zip(a, b):
                stamped = ("CHECKSUM", "DATASUM")
                assert [c.keyword for c in ha.header.cards] == [c.keyword for c in hb.header.cards]
                assert [(c.keyword, c.value, c.comment) for c in ha.header.cards if c.keyword not in stamped] == \
                       [(c.keyword, c.value, c.comment) for c in hb.header.cards if c.keyword not in stamped]
                assert ha.header["DATASUM"] == hb.header["DATASUM"]
                assert ha.data.dtype == hb.data.dtype
                np.testing.assert_array_equal(ha.data, hb.data)
    assert os.path.getsize(written) == os.path.getsize(streamed)


@pytest.mark.parametrize("with_sigma", [True, False])
def test_strip_writer_writes_the_file_write_writes(tmp_path, synth, with_sigma):
    from bandsynth.fits_io import synthetic_band_writer

    sigma = synth.uncertainty.array if with_sigma else None
    sb = SyntheticBand(synth.data, uncertainty=sigma, mask=synth.mask, wcs=synth.wcs, unit=synth.unit,
                       provenance=synth.provenance)
    sb.write(tmp_path / "whole.fits")
    with synthetic_band_writer(tmp_path / "strips.fits", sb.data.shape, uncertainty=with_sigma) as out:
        for row in (14, 0, 7):  # strips in any order
            rows = slice(row, row + 7 if row < 14 else 24)
            out.write_rows(row, sb.data[rows], sigma=None if sigma is None else sigma[rows], mask=sb.mask[rows])
        out.finish(unit=sb.unit, band="r", provenance=sb.provenance, wcs=sb.wcs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["strips.fits", "whole.fits"]
    assert_same_fits_file(tmp_path / "whole.fits", tmp_path / "strips.fits")
    back = SyntheticBand.read(tmp_path / "strips.fits")
    assert back.provenance == sb.provenance and back.unit == sb.unit
    np.testing.assert_array_equal(back.mask, sb.mask)
    if shutil.which("fitsverify"):
        result = subprocess.run(["fitsverify", "-q", str(tmp_path / "strips.fits")], capture_output=True, text=True)
        assert "verification OK" in result.stdout, result.stdout + result.stderr


def test_strip_writer_masks_non_finite_pixels_as_synthetic_band_does(tmp_path):
    from bandsynth.fits_io import synthetic_band_writer

    data, sigma = np.ones((6, 5), np.float32), np.full((6, 5), 0.1, np.float32)
    data[1, 2], sigma[4, 0] = np.inf, np.nan
    with pytest.warns(AstropyUserWarning, match="synthetic band 'r': 2 pixel"):
        sb = SyntheticBand(data, uncertainty=sigma, mask=np.zeros((6, 5), bool), unit="Jy", band="r")
    sb.write(tmp_path / "a.fits")
    with synthetic_band_writer(tmp_path / "b.fits", (6, 5)) as out:
        out.write_rows(0, data[:3], sigma=sigma[:3])
        out.write_rows(3, data[3:], sigma=sigma[3:])
        with pytest.warns(AstropyUserWarning, match="synthetic band 'r': 2 pixel"):
            out.finish(unit="Jy", band="r", provenance={"date": sb.provenance["date"]})
    assert_same_fits_file(tmp_path / "a.fits", tmp_path / "b.fits")


def test_strip_writer_leaves_nothing_behind_when_it_fails(tmp_path):
    from bandsynth.fits_io import synthetic_band_writer

    strip = np.ones((2, 4), np.float32)
    (tmp_path / "old.fits").write_bytes(b"old")
    with pytest.raises(FileExistsError, match="pass overwrite=True"):
        with synthetic_band_writer(tmp_path / "old.fits", (4, 4)):
            pass
    with pytest.raises(ValueError, match=r"2 row\(s\) of the synthetic band were not written \(first: row 2\)"):
        with synthetic_band_writer(tmp_path / "old.fits", (4, 4), overwrite=True) as out:
            out.write_rows(0, strip, sigma=strip)
            out.finish(unit="Jy", band="r")
    with pytest.raises(RuntimeError, match="was not finished"):
        with synthetic_band_writer(tmp_path / "new.fits", (4, 4), uncertainty=False) as out:
            out.write_rows(0, strip)
    with pytest.raises(ZeroDivisionError):
        with synthetic_band_writer(tmp_path / "new.fits", (4, 4), uncertainty=False) as out:
            out.write_rows(0, strip)
            1 / 0
    with pytest.raises(ValueError, match="do not fit an image of shape"):
        with synthetic_band_writer(tmp_path / "new.fits", (4, 4), uncertainty=False) as out:
            out.write_rows(3, strip)
    with pytest.raises(ValueError, match="sigma is required"):
        with synthetic_band_writer(tmp_path / "new.fits", (4, 4)) as out:
            out.write_rows(0, strip)
    with pytest.raises(ValueError, match="negative values"):
        with synthetic_band_writer(tmp_path / "new.fits", (4, 4)) as out:
            out.write_rows(0, strip, sigma=-strip)
    assert [p.name for p in tmp_path.iterdir()] == ["old.fits"]
    assert (tmp_path / "old.fits").read_bytes() == b"old"

# ---------------------------------------------------------------------- NDData behaviour
def test_slicing_keeps_wcs_and_provenance(synth):
    part = synth[2:10, 5:15]
    assert isinstance(part, SyntheticBand) and part.data.shape == (8, 10)
    assert isinstance(part.wcs, WCS)
    assert part.band.name == "r" and part.provenance["model"] == synth.provenance["model"]
    # the provenance says which part of the prediction this is; the original's is untouched
    assert part.provenance["history"] == [*synth.provenance["history"], "Cut out [2:10, 5:15] (rows, columns) of "
                                                                         "the prediction."]
    sky_part = part.wcs.pixel_to_world(3, 4)
    sky_full = synth.wcs.pixel_to_world(3 + 5, 4 + 2)
    assert sky_part.separation(sky_full).to_value(u.arcsec) < 1e-9
    np.testing.assert_array_equal(part.uncertainty.array, synth.uncertainty.array[2:10, 5:15])
    # a step: astropy's WCS reads it as binning, which put sb[::2, ::2]'s pixel (10, 10) 2.2" from its data's place
    with pytest.raises(ValueError, match=r"a SyntheticBand with a WCS cannot be sliced with a step \(\(slice\(None, "
                                         r"None, 2\), slice\(None, None, 2\)\)\): its pixels would not lie where"):
        synth[::2, ::2]


def test_arithmetic_keeps_provenance(synth):
    doubled = synth.multiply(2)
    assert isinstance(doubled, SyntheticBand) and doubled.unit == nanomaggy
    np.testing.assert_allclose(doubled.data, 2 * synth.data)
    np.testing.assert_allclose(doubled.uncertainty.array, 2 * synth.uncertainty.array, rtol=1e-6)
    assert doubled.provenance["history"][-1] == "Arithmetic applied: numpy.multiply with 2."
    assert synth.provenance["history"][-1].startswith("It's a test")  # the original is untouched
    diff = synth.subtract(synth)
    assert diff.band.name == "r" and np.nanmax(np.abs(diff.data)) == 0
    # collapses are no image: they raised TypeError ("float() argument must be ... not 'NoneType'")
    good = ~np.asarray(synth.mask, bool) if synth.mask is not None else np.ones(synth.data.shape, bool)
    total = synth.sum()
    assert total.unit == nanomaggy and total.uncertainty is None
    assert float(total.data) == pytest.approx(float(np.sum(synth.data[good], dtype=np.float64)), rel=1e-5)
    assert float(synth.max().data) == pytest.approx(float(np.max(synth.data[good])))
    assert synth.mean(axis=0).data.shape == (synth.data.shape[1],)
    assert synth.sum(propagate_uncertainties=True).uncertainty is not None  # as asked


def test_to_ccddata_gives_what_ccddata_reads_and_can_write(synth, tmp_path):
    ccd = synth.to_ccddata()
    assert isinstance(ccd, CCDData) and ccd.unit == nanomaggy
    np.testing.assert_array_equal(ccd.mask, synth.mask)
    assert json.loads(ccd.meta["BSPROV"]) == synth.provenance
    ccd.write(tmp_path / "ccd.fits")  # the provenance as a dict in meta: "Illegal value"
    synth.write(tmp_path / "synth.fits")
    again, read = CCDData.read(tmp_path / "ccd.fits"), CCDData.read(tmp_path / "synth.fits")
    np.testing.assert_array_equal(again.data, read.data)
    np.testing.assert_array_equal(again.uncertainty.array, read.uncertainty.array)
    assert again.wcs.wcs.compare(read.wcs.wcs) and again.meta["BSPROV"] == read.meta["BSPROV"]


@pytest.mark.parametrize(
    ("method", "module", "function", "args"),
    [
        ("compare", "bandsynth.metrics", "compare", ("truth",)),
        ("morphology", "bandsynth.morphology", "measure_morphology", ()),
        ("plot", "bandsynth.plotting", "plot_synthetic", ()),
    ],
)
def test_thin_methods_delegate(monkeypatch, synth, method, module, function, args):
    calls = []
    fake = types.ModuleType(module)
    setattr(fake, function, lambda *a, **kw: calls.append((a, kw)) or "result")
    monkeypatch.setitem(sys.modules, module, fake)
    assert getattr(synth, method)(*args, option=1) == "result"
    assert calls == [((synth, *args), {"option": 1})]
