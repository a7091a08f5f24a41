"""The ``bandsynth`` command: train, evaluate, demo, models."""

import json
import sys

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from bandsynth.cli import build_parser, main
from bandsynth.models.zoo import get_card


def test_every_documented_command_is_registered():
    commands = build_parser()._subparsers._group_actions[0].choices
    assert {"demo", "train", "evaluate", "models", "mock", "predict", "predict-batch"} <= set(commands)


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage: bandsynth" in capsys.readouterr().out


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model trained for a few steps through ``bandsynth train`` with held-out metrics."""
    out = tmp_path_factory.mktemp("train") / "tiny_nuv_k_to_r"
    code = main([
        "train", "--inputs", "NUV", "K", "--output", "r", "--name", "tiny_nuv_k_to_r", "--out", str(out),
        "--preset", "tiny", "--epochs", "1", "--max-steps", "3", "--crop", "32", "--n-galaxies", "20", "--size", "48",
        "--views", "1", "--evaluate", "--quiet",
    ])
    assert code == 0
    return out


def test_train_writes_weights_and_a_complete_card(trained):
    card = json.loads(trained.with_suffix(".json").read_text())
    assert card["name"] == "tiny_nuv_k_to_r" and card["inputs"] == ["NUV", "Ks"] and card["output"] == "r"
    assert card["training"]["recipe"].startswith("bandsynth train")
    assert card["training"]["data_info"]["n_galaxies"] == 20
    assert card["training"]["target"] == "noise-free ideal-mode images"  # not "observed images"
    assert len(card["sha256"]) == 64 and card["n_parameters"] > 0
    test = card["metrics"]["test"]
    assert set(test) >= {"model", "nearest_input", "linear_colour"}
    assert 0 < test["linear_colour"]["ssim"] <= 1
    assert set(card["calibration"]) == {"plain", "tta"} and card["calibration"]["plain"]["temperatures"]


def test_train_refuses_to_overwrite(trained, caplog):
    code = main(["train", "--inputs", "NUV", "K", "--output", "r", "--out", str(trained), "--preset", "tiny",
                 "--n-galaxies", "20", "--size", "48", "--quiet"])
    assert code == 2  # refused before any work
    assert "pass --overwrite" in caplog.text


def test_train_for_observed_targets_drops_the_ssim_term_and_keeps_the_last_weights(tmp_path):
    out = tmp_path / "observed"
    code = main(["train", "--inputs", "NUV", "K", "--output", "r", "--out", str(out), "--preset", "tiny",
                 "--epochs", "1", "--max-steps", "2", "--crop", "32", "--n-galaxies", "20", "--size", "32",
                 "--views", "1", "--ssim-weight", "0", "--flux-weight", "0.5", "--flux-error", "pixel", "--keep-last",
                 "--quiet"])
    assert code == 0
    training = json.loads(out.with_suffix(".json").read_text())["training"]
    assert (training["ssim_weight"], training["flux_weight"], training["checkpoint"]) == (0.0, 0.5, "last")
    assert training["flux_error"] == "pixel" and "the pixels' absolute flux errors" in training["loss"]
    assert training["loss"].startswith("L1 on the mean + flux_weight") and training["n_selection"] == 0


def test_train_offers_every_form_of_the_photometric_term():
    from bandsynth.cli import build_parser
    from bandsynth.nn.losses import FLUX_ERRORS

    command = ["train", "--inputs", "NUV", "K", "--output", "r", "--out", "m", "--flux-error"]
    for form in FLUX_ERRORS:  # the parser spells them out so as not to import torch
        assert build_parser().parse_args([*command, form]).flux_error == form


@pytest.mark.parametrize("flag", ["--ssim-weight", "--flux-weight"])
def test_train_refuses_a_negative_loss_weight(flag, tmp_path, caplog):
    code = main(["train", "--inputs", "NUV", "K", "--output", "r", "--out", str(tmp_path / "m"), flag, "-1",
                 "--quiet"])
    assert code == 2 and f"{flag} -1.0: expected a finite weight >= 0" in caplog.text


@pytest.mark.parametrize(("args", "message"), [
    (["--epochs", "0"], "argument --epochs: expected a whole number of at least 1, got 0"),
    (["--batch-size", "two"], "argument --batch-size: expected a whole number, got 'two'"),
    (["--lr", "-1"], "argument --lr: expected a positive number, got -1"),
    (["--preset", "huge"], "argument --preset: invalid choice: 'huge'"),
    (["--n-galaxies", "-5"], "argument --n-galaxies: expected a whole number of at least 1, got -5"),
])
def test_train_options_out_of_range_are_usage_errors(args, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--inputs", "NUV", "K", "--output", "r", "--out", str(tmp_path / "m"), *args, "--quiet"])
    assert exc.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("command", [["predict", "--model", "m", "--input", "r=x.fits", "-o", "o.fits"],
                                     ["predict-batch", "--model", "m", "--manifest", "m.csv", "-o", "out"]])
def test_an_option_a_command_does_not_have_is_refused_with_that_commands_usage(command, capsys):
    # argparse printed bandsynth's own usage ("bandsynth [-h] [--version] [-v] COMMAND ..."), not the command's
    with pytest.raises(SystemExit) as exc:
        main([*command, "--tile", "0"])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert f"usage: bandsynth {command[0]} " in err and f"bandsynth {command[0]}: error: unrecognized arguments: " \
        "--tile 0" in err


@pytest.mark.parametrize(("command", "message"), [
    (["train", "--output", "g", "--output", "r"], "--output given twice (g and r): give it once"),
    (["train", "--output", "r", "--out", "a", "--out", "b"], "--out given twice (a and b): give it once"),
    (["train", "--output", "r", "--data", "x", "--data", "y"], "--data given twice (x and y): give it once"),
    (["train", "--output", "r", "--epochs", "1", "--epochs", "2"], "--epochs given twice (1 and 2): give it once"),
    (["mock", "--n", "3", "--n", "4", "-o", "m"], "--n given twice (3 and 4): give it once"),
    (["mock", "--n", "3", "--size", "16", "--size", "32", "-o", "m"], "--size given twice (16 and 32): give it once"),
])
def test_train_and_mock_options_given_twice_are_usage_errors(command, message, tmp_path, monkeypatch, capsys):
    # The last value was silently taken: --output g --output r trained a model of r.
    monkeypatch.chdir(tmp_path)
    if command[0] == "train":
        command = [*command[:1], "--inputs", "NUV", "K", *command[1:]]
        command += [] if "--out" in command else ["--out", "m"]
    with pytest.raises(SystemExit) as exc:
        main([*command, "--quiet"])
    assert exc.value.code == 2 and message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_train_names_its_flags_in_its_refusals_before_training(tmp_path, caplog):
    # The hint was "pass calibrate=False" (a Python argument), an odd --crop failed inside the network as
    # "generator input height 15 is not a multiple of 2**n_down = 2", a --checkpoint-dir naming a file as
    # "[Errno 17] File exists" once the data were loaded, and --checkpoint-every alone wrote no checkpoint.
    stored = tmp_path / "set"
    assert main(["mock", "--n", "6", "--bands", "NUV", "K", "r", "--size", "32", "-o", str(stored), "-q"]) == 0
    from bandsynth.datasets import open_dataset

    assert len(open_dataset(stored).indices("validation")) == 1
    base = ["train", "--inputs", "NUV", "K", "--output", "r", "--preset", "tiny", "--epochs", "1", "--data",
            str(stored), "--out", str(tmp_path / "m"), "--quiet"]
    assert main([*base, "--crop", "16"]) == 2
    assert (f"--data {stored}: the data set has 1 validation image; choosing the checkpoint on one half of the "
            "validation split and calibrating on the other needs at least 2: pass --keep-last") in caplog.text
    assert "calibrate=False" not in caplog.text
    assert main([*base, "--crop", "15"]) == 2
    assert "--crop 15: the tiny preset needs a multiple of 2 pixels (e.g. 14 or 16), or 0 for whole images" \
        in caplog.text
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main([*base, "--crop", "16", "--checkpoint-dir", str(afile)]) == 2
    assert f"--checkpoint-dir {afile}: a file, not a folder" in caplog.text
    assert main([*base, "--crop", "16", "--checkpoint-every", "2"]) == 2
    assert "--checkpoint-every 2: needs --checkpoint-dir (the folder the checkpoints go to)" in caplog.text
    # a dot in the stem is part of the name: r_0.262as.json is this model's card, not r_0.json
    (tmp_path / "r_0.262as.json").write_text("{}")
    assert main([*base[:-3], "--out", str(tmp_path / "r_0.262as"), "--quiet"]) == 2
    assert f"output {tmp_path / 'r_0.262as.safetensors'} exists" not in caplog.text
    assert f"output {tmp_path / 'r_0.262as.json'} exists; pass --overwrite to replace it" in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "r_0.262as.json", "set"]


def test_train_and_evaluate_check_their_data_and_model_options_before_any_work(trained, tmp_path, caplog):
    from bandsynth.cli.train import FAMILY_NAMES, PRESET_NAMES
    from bandsynth.datasets.mock.families import FAMILIES
    from bandsynth.nn.generator import PRESETS

    assert PRESET_NAMES == tuple(PRESETS) and FAMILY_NAMES == tuple(FAMILIES)
    base = ["train", "--inputs", "NUV", "K", "--out", str(tmp_path / "m"), "--quiet"]
    assert main(["train", "--inputs", "NUV", "K", "--output", "r", "--out", str(tmp_path), "--quiet"]) == 2
    assert f"--out {tmp_path}: a folder; give the model's STEM inside it" in caplog.text
    assert main([*base, "--output", "Ks"]) == 2 and "--output Ks: also one of --inputs (NUV K)" in caplog.text
    assert main([*base, "--output", "r", "--init", str(tmp_path / "nosuch")]) == 2 and "--init " in caplog.text
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main([*base, "--output", "r", "--data", str(afile)]) == 2
    assert f"--data {afile}: a file, not a data set folder" in caplog.text
    stored = tmp_path / "set"
    assert main(["mock", "--n", "4", "--bands", "NUV", "K", "--size", "32", "-o", str(stored), "--quiet"]) == 0
    assert main([*base, "--output", "r", "--data", str(stored)]) == 2
    assert f"--data {stored}: the data set has bands NUV, Ks; no r" in caplog.text
    assert main(["train", "--inputs", "NUV", "--output", "K", "--out", str(tmp_path / "m"), "--data", str(stored),
                 "--crop", "48", "--quiet"]) == 2
    assert "--crop 48: larger than the data set's 32 x 32 pixel images; at most 32, or 0 for whole images" \
        in caplog.text
    # a mock universe too small for the crop is refused before its galaxies are made (it made them all first)
    from unittest import mock

    with mock.patch("bandsynth.datasets.make_dataset", side_effect=AssertionError("galaxies made")):
        assert main(["train", "--inputs", "NUV", "--output", "K", "--out", str(tmp_path / "m2"), "--size", "32",
                     "--quiet"]) == 2
    assert "--crop 64: larger than the data set's 32 x 32 pixel images; at most 32" in caplog.text
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "--model", str(trained), "--max-images", "-3", "-o", str(tmp_path / "ev")])
    assert exc.value.code == 2


def test_train_average_epochs_keeps_the_mean_of_the_last_epochs(tmp_path):
    out = tmp_path / "averaged"
    code = main(["train", "--inputs", "NUV", "K", "--output", "r", "--out", str(out), "--preset", "tiny",
                 "--epochs", "2", "--average-epochs", "2", "--crop", "32", "--n-galaxies", "20", "--size", "32",
                 "--views", "1", "--quiet"])
    assert code == 0
    training = json.loads(out.with_suffix(".json").read_text())["training"]
    assert training["checkpoint"] == "mean of the weights at the ends of the last 2 epochs"
    assert 0 < training["average_validation_ssim"] <= 1


@pytest.mark.parametrize("value", ["0", "3"])
def test_train_refuses_average_epochs_outside_the_run(value, tmp_path, caplog):
    code = main(["train", "--inputs", "NUV", "K", "--output", "r", "--out", str(tmp_path / "m"), "--epochs", "2",
                 "--average-epochs", value, "--quiet"])
    assert code == 2 and f"--average-epochs {value}: expected 1 to --epochs (2)" in caplog.text


def test_evaluate_writes_tables_and_figures(trained, tmp_path, capsys):
    out = tmp_path / "eval"
    code = main(["evaluate", "--model", str(trained), "--from-card", "--out", str(out), "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "nearest_input" in printed and "linear_colour" in printed
    summary = Table.read(out / "summary.ecsv")
    assert list(summary["method"]) == ["model", "nearest_input", "linear_colour"]
    for column in ("mae", "ssim", "psnr", "gini_w1", "m20_w1", "coverage_1sigma"):
        assert column in summary.colnames
    per_galaxy = Table.read(out / "model_per_galaxy.ecsv")
    assert len(per_galaxy) == summary["n_galaxies"][0] + summary["n_failed"][0]
    # the files say their units
    assert str(summary["dmag_total"].unit) == "mag" and str(summary["psnr"].unit) == "dB"
    assert str(per_galaxy["flux_true"].unit) == "nmgy" and str(per_galaxy["colour_error_NUV"].unit) == "mag"
    for png in ("panels.png", "gini_kde.png", "m20_kde.png", "calibration.png"):
        assert (out / png).stat().st_size > 1000
    # A second run without --overwrite keeps the first run's files, and says so before any work.
    assert main(["evaluate", "--model", str(trained), "--from-card", "-o", str(out), "--quiet"]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    # Replaced without figures: the first run's figures go (they stayed, beside another run's tables).
    assert main(["evaluate", "--model", str(trained), "--from-card", "-o", str(out), "--quiet", "--overwrite",
                 "--no-figures"]) == 0
    assert not list(out.glob("*.png"))


def test_evaluate_robustness_rows_are_written_to_the_card(trained, tmp_path, capsys):
    import shutil

    stem = tmp_path / "copy"
    for suffix in (".json", ".safetensors"):
        shutil.copy(trained.with_suffix(suffix), stem.with_suffix(suffix))
    code = main(["evaluate", "--model", str(stem), "--from-card", "--max-images", "2", "--robustness", "2",
                 "--write-card", "--quiet"])
    assert code == 0
    assert "only edge-on disks" in capsys.readouterr().out
    metrics = json.loads(stem.with_suffix(".json").read_text())["metrics"]
    assert metrics["test"]["model"]["n_galaxies"] == 2
    assert set(metrics["robustness"]) == {"survey_mode", "starbursts", "edge_on"}
    assert metrics["robustness"]["starbursts"]["model"]["n_galaxies"] == 2
    # Re-measuring the test split alone keeps the robustness rows and what other benchmarks recorded.
    from bandsynth import Translator

    card = Translator.load(str(stem)).card
    card.with_metrics({"bf16": {"max_flux_change": 1e-4}}).write(stem.with_suffix(".json"))
    assert main(["evaluate", "--model", str(stem), "--from-card", "--max-images", "1", "--write-card", "--quiet"]) == 0
    metrics = json.loads(stem.with_suffix(".json").read_text())["metrics"]
    assert metrics["test"]["model"]["n_galaxies"] == 1 and "robustness" in metrics
    assert metrics["bf16"] == {"max_flux_change": 1e-4}


def test_evaluate_scores_one_request_of_an_any_band_model(tiny_any_band_model, tmp_path, caplog, capsys):
    # it failed with "'AnyBandTranslator' object has no attribute 'output'"
    from bandsynth.datasets import make_dataset
    from bandsynth.evaluation import evaluate_translator

    stem, translator = tiny_any_band_model
    common = ["evaluate", "--model", str(stem), "--n-galaxies", "6", "--size", "48", "--max-images", "2", "--quiet"]
    assert main(common) == 2
    assert "--band: model 'tiny_any' predicts any of NUV, g, r, Ks; say which with --band" in caplog.text
    assert main([*common, "--band", "g", "--input-bands", "NUV", "Ks"]) == 0
    printed = capsys.readouterr().out
    assert "model tiny_any: NUV + Ks -> g, test split" in printed and "linear_colour" in printed
    # its card holds no request's test rows: nothing is written into it
    before = stem.with_suffix(".json").read_bytes()
    assert main([*common, "--band", "g", "--write-card"]) == 2
    assert "--write-card: model" in caplog.text and "its card keeps no test rows of one request" in caplog.text
    assert stem.with_suffix(".json").read_bytes() == before
    # a model of no mock universe has none to rebuild: a usage error, not an unexpected one
    assert main(["evaluate", "--model", "any_band_kids_viking", "--band", "KiDS_r", "--from-card", "--quiet"]) == 2
    assert ("--from-card: model 'any_band_kids_viking' was not trained on the built-in mock universe (training data: "
            "observed KiDS/VIKING galaxies") in caplog.text and "on a stored data set (--data FOLDER)" in caplog.text
    data = make_dataset(4, bands=["NUV", "g", "r", "Ks"], size=48, seed=1)
    with pytest.raises(ValueError, match=r"predicts any of NUV, g, r, Ks: evaluate one request, "
                                         r"translator\.task\(inputs=\[\.\.\.\], output=BAND\)"):
        evaluate_translator(translator, data)
    result = evaluate_translator(translator.task(inputs=["NUV", "Ks"], output="g"), data, split="train",
                                 max_images=2, progress=False)
    assert result.summary["n_galaxies"][0] == 2


def test_demo_runs_offline_and_writes_fits_and_png(tmp_path, capsys):
    code = main(["demo", "-o", str(tmp_path)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "SSIM" in printed or "ssim" in printed
    (fits_path,) = tmp_path.glob("*.fits")
    (png_path,) = tmp_path.glob("*.png")
    with fits.open(fits_path) as hdul:
        assert hdul[0].header["BSMODEL"] == "nuv_k_to_r_paper"
        assert [h.name for h in hdul[1:3]] == ["UNCERT", "MASK"]
        assert np.isfinite(hdul[0].data).all()
    assert png_path.stat().st_size > 10_000
    # A second run keeps the first run's files unless told otherwise, and says so before any work.
    assert main(["demo", "-o", str(tmp_path)]) == 2
    assert "pass --overwrite" in capsys.readouterr().err


def test_demo_shows_a_galaxy_as_the_models_training_universe_does(tmp_path, monkeypatch):
    # kids_g_z_to_r was trained on galaxies at their redshifts (bc03 family): its demo galaxy was drawn in the rest
    # frame, another universe than the one its card's figures describe.
    import bandsynth.datasets.mock as mock

    seen, observe = [], mock.observe_galaxy
    monkeypatch.setattr(mock, "observe_galaxy", lambda *a, **kw: seen.append(kw) or observe(*a, **kw))
    assert main(["demo", "--model", "kids_g_z_to_r", "-o", str(tmp_path)]) == 0
    info = get_card("kids_g_z_to_r").training["data_info"]
    assert [(kw["survey"], kw.get("redshift"), kw.get("family")) for kw in seen] == [("kids_viking", True, "bc03")]
    assert info["redshift"] is True and info["family"] == "bc03"


def test_demo_without_the_model_says_so(capsys):
    assert main(["demo", "--model", "not_shipped_model"]) == 2
    assert "unknown model 'not_shipped_model'" in capsys.readouterr().err
    assert main(["mock", "--n", "2", "--depth-offset", "1", "-o", "unused"]) == 2  # ignored in ideal mode
    assert "--depth-offset needs --mode survey or --survey (ideal mode images have no noise)" in capsys.readouterr().err
    for command in (["demo", "--seed", "-1"], ["mock", "--seed", "-1"], ["mock", "--size", "5"]):  # exit 1, no flag
        with pytest.raises(SystemExit, match="2"):
            main(command)
        assert f"argument {command[1]}" in (err := capsys.readouterr().err) and "a whole number of at least" in err


def test_demo_of_an_any_band_model_asks_for_the_band_and_predicts_it_from_the_others(tiny_any_band_model, tmp_path,
                                                                                      capsys):
    stem = str(tiny_any_band_model[0])
    assert main(["demo", "--model", stem, "-o", str(tmp_path)]) == 2  # it crashed: no attribute 'output'
    assert "say which with --band, e.g. --band NUV" in capsys.readouterr().err
    assert main(["demo", "--model", stem, "--band", "z", "-o", str(tmp_path)]) == 2
    assert "--band z: model 'tiny_any' predicts NUV, g, r, Ks" in capsys.readouterr().err
    assert main(["demo", "--model", stem, "--band", "r", "-o", str(tmp_path), "--quiet"]) == 0
    with fits.open(tmp_path / "mock7_r_synth.fits") as hdul:
        header = hdul[0].header
        assert header["BSBAND"] == "r" and [header[f"BSIN{i}"] for i in (1, 2, 3)] == ["NUV", "g", "Ks"]


def test_models_shows_the_card_of_an_any_band_model(tiny_any_band_model, capsys):
    assert main(["models", str(tiny_any_band_model[0])]) == 0
    text = capsys.readouterr().out
    assert "tiny_any: any of NUV, g, r, Ks from any of NUV, g, r, Ks" in text
    assert "colour model  per request" in text and "uncertainty   not calibrated" in text


def test_models_shows_an_any_band_calibration_per_number_of_bands_at_hand(capsys):
    from bandsynth import Translator

    card = Translator.load("any_band_kids_viking").card
    assert main(["models", "any_band_kids_viking"]) == 0
    text = capsys.readouterr().out
    one = card.calibration["KiDS_r"]["by_n_inputs"]["1"]["plain"]["coverage_1sigma"]
    assert (f"uncertainty   KiDS_r from fewer bands drawn at random, plain: 1-sigma coverage by number at hand "
            f"1: {one:.3f}, 2: ") in text


def test_a_reader_going_away_ends_the_command_quietly(monkeypatch, caplog):
    # bandsynth models | head: the pipe closes before the table is written.
    class ClosedPipe:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert main(["models"]) == 141
    assert "Broken pipe" not in caplog.text and "ERROR" not in caplog.text


def test_evaluate_fails_a_galaxy_whose_image_is_blank_not_the_run(trained, tmp_path, caplog):
    # One blank truth stopped the whole evaluation with "band 'r' is all-zero", naming no galaxy, no table written.
    stored = tmp_path / "mock"
    assert main(["mock", "--n", "6", "--bands", "NUV", "K", "r", "--size", "48", "-o", str(stored), "--quiet"]) == 0
    from bandsynth.datasets import open_dataset

    test = [int(i) for i in open_dataset(stored).indices("train")]
    with fits.open(stored / "cube_r.fits", mode="update") as hdul:
        hdul[0].data[test[0]] = 0.0
    out = tmp_path / "eval"
    code = main(["evaluate", "--model", str(trained), "--data", str(stored), "--split", "train", "-o", str(out),
                 "--no-figures", "--quiet"])
    assert code == 1
    assert f"1 of {len(test)} galaxies could not be evaluated" in caplog.text
    per_galaxy = Table.read(out / "model_per_galaxy.ecsv")
    failed = per_galaxy[per_galaxy["image"] == test[0]]
    assert len(per_galaxy) == len(test) and "band 'r' is all-zero" in failed["error"][0]
    assert np.isnan(failed["mae"][0]) and Table.read(out / "summary.ecsv")["n_failed"][0] == 1
    assert list(per_galaxy["image"]) == test and per_galaxy.meta["n_failed"] == 1  # in order, counted
    counts = [c for c in per_galaxy.colnames if c.startswith("morph_flag") or c == "index"]  # -1: not measured
    assert counts and all(per_galaxy[c].dtype.kind == "i" and failed[c][0] == -1 for c in counts)
