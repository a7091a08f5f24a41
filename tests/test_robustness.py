"""Out-of-distribution warnings and the robustness rows of a model card."""

import warnings

import numpy as np
import pytest
from astropy.nddata import CCDData
from astropy.utils.exceptions import AstropyUserWarning

from bandsynth import BandStack
from bandsynth.datasets import make_galaxy
from bandsynth.evaluation import SHIFTED_POPULATIONS, evaluate_robustness, robustness_sets
from bandsynth.models.zoo import ModelCard
from bandsynth.models.domain import input_psf_fwhm

INPUTS, OUTPUT = ("NUV", "Ks"), "r"


@pytest.fixture(scope="module")
def translator(tiny_card, make_tiny_translator):
    card = tiny_card(
        "tiny_ood",
        psf_fwhm={b: 0.393 for b in (*INPUTS, OUTPUT)},
        training={"data_info": {"size": 48, "source": "bandsynth.datasets.mock"}},
    )
    return make_tiny_translator(card)


def test_psf_far_from_training_warns_and_names_the_band(translator):
    # Survey-mode galaxies record each band's PSF (several arcsec in NUV) in stack.meta.
    survey = make_galaxy(3, bands=list(INPUTS), size=48, mode="survey")
    with pytest.warns(AstropyUserWarning) as record:
        translator.predict(survey)
    messages = [str(w.message) for w in record]
    assert any("NUV images with a PSF FWHM of 0.393 arcsec" in m for m in messages)
    assert any("Ks images with a PSF FWHM of 0.393 arcsec" in m for m in messages)


def test_psf_read_from_header_keyword(translator):
    stack = make_galaxy(3, bands=list(INPUTS), size=48)
    header_stack = BandStack.from_arrays(
        {b: CCDData(stack[b].data, unit=stack[b].unit, meta={"SEEING": 1.5}) for b in INPUTS}, wcs=stack.wcs
    )
    assert input_psf_fwhm(header_stack, "Ks") == 1.5
    assert input_psf_fwhm(BandStack.from_arrays({b: stack[b].data for b in INPUTS}, unit="nanomaggy"), "Ks") is None
    with pytest.warns(AstropyUserWarning) as record:
        translator.predict(header_stack, uncertainty=False)
    messages = [str(w.message) for w in record]
    assert any("Ks PSF is 1.5 arcsec" in m for m in messages) and any("NUV PSF is 1.5 arcsec" in m for m in messages)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        translator.predict(stack, uncertainty=False)  # the training PSF and pixel scale: no warning


def test_robustness_sets_are_new_galaxies_of_the_shifted_kind(translator):
    sets = robustness_sets(translator.card, n_galaxies=60, max_images=5)
    assert list(sets) == ["survey_mode", *SHIFTED_POPULATIONS]
    description, data, indices = sets["survey_mode"]
    assert "trained on ideal" in description and len(indices) == 5
    assert data.stack(indices[0])[OUTPUT].uncertainty is not None  # survey mode: noise maps
    for key, (galaxy_class, _) in SHIFTED_POPULATIONS.items():
        _, data, indices = sets[key]
        assert 0 < len(indices) <= 5
        assert set(np.asarray(data.manifest["galaxy_class"])[indices]) == {galaxy_class}


def test_evaluate_robustness_rows_go_into_the_card(translator):
    rows = evaluate_robustness(translator, linear_coefficients={"NUV": 1.0, "Ks": 0.3}, n_galaxies=40,
                               max_images=3, progress=False)
    assert set(rows) == {"survey_mode", "starbursts", "edge_on"}
    for row in rows.values():
        assert row["model"]["n_galaxies"] == 3 and -1 <= row["model"]["ssim"] <= 1  # an untrained model
        assert {"nearest_input", "linear_colour", "description"} <= set(row)
    card = translator.card.replace(metrics={"robustness": rows})
    assert ModelCard.from_dict(card.to_dict()).metrics["robustness"]["edge_on"]["split"] == "edge_on"


def test_a_survey_model_warns_that_inputs_without_a_wcs_leave_their_pixel_scale_unchecked():
    # Inputs without a WCS skipped the pixel-scale check of a model that is sensitive to it, without a word.
    from bandsynth import BandStack
    from bandsynth.models.domain import domain_problems
    from bandsynth.models.zoo import get_card

    card = get_card("kids_g_z_to_r")
    assert card.mode == "survey"
    image = np.exp(-np.hypot(*np.mgrid[-32:32, -32:32]) / 5.0)
    stack = BandStack({band: image for band in card.inputs}, unit="nanomaggy")
    assert any(f"no celestial WCS, so its pixel scale cannot be checked against the {card.pixel_scale:.3g} "
               f"arcsec/pixel model 'kids_g_z_to_r'" in p for p in domain_problems(card, stack))
    assert not any("celestial WCS" in p for p in domain_problems(get_card("nuv_k_to_r_paper"), stack))
