"""Sphinx helpers of the bandsynth documentation.

* Pages written at build time into ``docs/generated/`` (``builder-inited``):

  - ``zoo/<name>.rst``, one page per model card of the registry
    (`bandsynth.models.zoo.list_models`), and ``zoo_summary.inc``, the table of
    models (or the statement that none ships) included by ``models.rst``;
  - ``cli.inc``, the ``--help`` text of every ``bandsynth`` sub-command;
  - ``bands.inc``, the table of the band registry;
  - ``fits_header.inc``, the primary header of an example synthetic band;
  - ``demo_panel.inc``, the demo picture when ``_static/demo_panel.png`` exists.

  Files are rewritten only when their text changes, so an unchanged page is not
  read again by an incremental build.

* A sphinx-gallery image scraper for figures that are never registered with
  pyplot: `bandsynth.plotting` builds `matplotlib.figure.Figure` objects
  directly, so the examples simply leave them in a variable.
"""

from __future__ import annotations

import io
import math
import re
from contextlib import redirect_stdout
from pathlib import Path

__all__ = [
    "card_page",
    "zoo_summary",
    "cli_reference",
    "bands_table",
    "example_fits_header",
    "write_generated",
    "figure_scraper",
    "reset_figure_scraper",
    "ExampleOrder",
    "setup",
]

# Summary columns of a card's held-out metrics, in the paper's order, with headings.
METRIC_COLUMNS = {
    "mae": "MAE",
    "ssim": "SSIM",
    "psnr": "PSNR [dB]",
    "gini_w1": "W1 Gini",
    "m20_w1": "W1 M20",
    "dmag_total": "Δmag total (median, signed)",
    "dmag_total_abs": "|Δmag| total (median)",
    "dmag_aperture": "Δmag aperture (median, signed)",
    "dmag_aperture_abs": "|Δmag| aperture (median)",
    "coverage_1sigma": "1σ coverage",
    "coverage_2sigma": "2σ coverage",
    "n_galaxies": "galaxies",
    "n_failed": "failed",
}
METHOD_LABELS = {
    "model": "model",
    "nearest_input": "baseline: nearest input band",
    "linear_colour": "baseline: linear colour model",
}


# ---------------------------------------------------------------------- reST helpers
def _heading(text, char):
    return f"{text}\n{char * len(text)}\n"


def _escape(text):
    """Plain text safe inside reST (no markup characters acting as markup)."""
    return re.sub(r"([\\`*_|])", r"\\\1", str(text))


def _value(value):
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_value(v) for v in value)
    if isinstance(value, dict) or hasattr(value, "items"):
        return "; ".join(f"{k}: {_value(v)}" for k, v in value.items())
    return str(value)


def _field_list(items):
    """Two-column table of ``(name, value)`` pairs; empty values are left out.

    A mapping value gets one line per entry.
    """
    lines = []
    for key, value in items:
        if value in (None, "", {}, ()):
            continue
        if hasattr(value, "items"):
            entries = [f"{k}: {' '.join(_value(v).split())}" for k, v in value.items()]
            cell = [f"| {_escape(e)}" for e in entries]
        else:
            cell = [_escape(" ".join(_value(value).split()))]
        lines += [f"   * - {_escape(key)}", f"     - {cell[0]}"] + [f"       {c}" for c in cell[1:]]
    if not lines:
        return ""
    return "\n".join([".. list-table::", "   :widths: 28 72", ""] + lines) + "\n"


def _list_table(header, rows, *, widths=None):
    lines = [".. list-table::", "   :header-rows: 1"]
    if widths:
        lines.append(f"   :widths: {' '.join(map(str, widths))}")
    lines.append("")
    for row in [header, *rows]:
        cells = [_escape(c) if str(c).strip() else "\\ " for c in row]
        lines.append(f"   * - {cells[0]}")
        lines.extend(f"     - {c}" for c in cells[1:])
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------- model cards
def _metrics_table(metrics):
    """List-table of held-out metrics: one row per metric, one column per method."""
    test = dict(metrics.get("test", {})) if metrics else {}
    methods = [m for m in METHOD_LABELS if m in test] + sorted(
        m for m in test if m not in METHOD_LABELS and hasattr(test[m], "items")
    )
    if not methods:
        return None, None
    keys = [k for k in METRIC_COLUMNS if any(k in test[m] for m in methods)]
    keys += sorted({k for m in methods for k in test[m] if k.startswith("ssim_gain_")})
    header = ["metric"] + [METHOD_LABELS.get(m, m) for m in methods]
    rows = [
        [METRIC_COLUMNS.get(k, "SSIM gain over " + k[len("ssim_gain_"):])]
        + [_value(test[m].get(k, float("nan"))) for m in methods]
        for k in keys
    ]
    return _list_table(header, rows), test.get("split", "test")


def _ssim_gain(row):
    """SSIM gain over the input band nearest the output: the smallest of the per-band gains."""
    gains = [v for k, v in row.items() if k.startswith("ssim_gain_") and v is not None]
    return min(gains) if gains else None


def _robustness_rows(card):
    rows = []
    for key, row in dict(card.metrics.get("robustness", {})).items():
        model = dict(row.get("model", {}))
        rows.append(
            [
                key.replace("_", " "),
                row.get("description", ""),
                _value(model.get("n_galaxies")),
                *(_value(dict(row.get(m, {})).get("ssim")) for m in METHOD_LABELS),
                _value(model.get("psnr")),
                _value(model.get("mae")),
                _value(model.get("coverage_1sigma")),
            ]
        )
    return rows


ROBUSTNESS_HEADER = ["set", "galaxies", "n", "SSIM model", "SSIM nearest input", "SSIM linear colour",
                     "PSNR model", "MAE model", "1σ coverage"]


def card_page(card):
    """reST page of one `~bandsynth.models.zoo.ModelCard`."""
    training = dict(card.training)
    data_info = dict(training.pop("data_info", {}) or {})
    recipe = training.pop("recipe", "")
    out = [f".. _model-{card.name}:\n", _heading(f"Model ``{card.name}``", "=")]
    kind = _kind(card)
    if card.outputs:
        out.append(
            f"Predicts any of **{', '.join(card.outputs)}** from whichever of the others an image has "
            f"(:doc:`/any_band`), trained on {card.mode}-mode images.\n"
        )
    else:
        out.append(
            f"Predicts **{card.output}** from **{' + '.join(card.inputs)}** ({kind}), trained on "
            f"{card.mode}-mode images.\n"
        )
    if card.description:
        out.append(_escape(card.description) + "\n")
    out.append(
        ".. code-block:: python\n\n"
        "    from bandsynth import Translator\n\n"
        f'    translator = Translator.load("{card.name}")\n'
        + (f'    prediction = translator.predict(stack, band="{card.outputs[0]}")  # from the bands stack has\n'
           if card.outputs else "")
    )
    out.append(_heading("Use", "-"))
    out.append(
        _field_list(
            [
                *([("Reads (any subset)", ", ".join(card.inputs)),
                   ("Writes (any one not read)", ", ".join(card.outputs))]
                  if card.outputs else [("Inputs (channel order)", ", ".join(card.inputs)), ("Output", card.output)]),
                ("Unit", card.unit),
                ("Observing mode of the training data", card.mode),
                ("Pixel scale", f"{card.pixel_scale:g} arcsec/pixel"),
                ("PSF FWHM", {b: f'{v:g}"' for b, v in dict(card.psf_fwhm).items()}),
                ("Model version", getattr(card, "version", "")),
            ]
        )
    )
    out.append(
        "Inputs far from the training pixel scale are warned about; reproject them first "
        "(:doc:`/bands_and_stacks`).\n"
    )
    if getattr(card, "receptive_field", 0):
        out.append(
            f"Each output pixel depends only on the inputs within {card.receptive_field} × "
            f"{card.receptive_field} pixels around it: leave at least {card.receptive_field // 2} pixels "
            "of sky around what you measure, and any cut-out size, tile size or mosaic gives the same "
            "pixels (:doc:`/photometric_contract`).\n"
        )
    out.append(_heading("Network", "-"))
    out.append(
        _field_list(
            [
                ("Generator preset", card.preset),
                ("Architecture options", dict(card.architecture) or "preset defaults"),
                ("Trainable parameters", f"{card.n_parameters:,}" if card.n_parameters else ""),
                ("Receptive field", f"{card.receptive_field} pixels" if getattr(card, "receptive_field", 0) else ""),
                (f"Fixed asinh scaling per band ({card.unit})",
                 {b: dict(p) for b, p in dict(card.scaling).items()}),
                ("Linear colour model (coefficients)",
                 dict(dict(getattr(card, "baseline", {}) or {}).get("coefficients", {}) or {})),
            ]
        )
    )
    out.append(
        f"SHA-256 of the weights file, checked on every load:\n\n.. code-block:: text\n\n    {card.sha256}\n"
        if card.sha256
        else "The card records no SHA-256 of the weights file.\n"
    )
    if getattr(card, "card_sha256", ""):
        out.append(
            "SHA-256 of the card's content, checked on every load (an edited card is refused):\n\n"
            f".. code-block:: text\n\n    {card.card_sha256}\n"
        )
    out.append(_heading("Training data and recipe", "-"))
    data = training.pop("data", "")
    start = training.pop("init", None)
    sigma_head = dict(training.pop("sigma_head", None) or {})
    out.append(_field_list([("Data", data), ("Data set", data_info), *sorted(training.items())]))
    if recipe:
        out.append("The command that produced it:\n\n.. code-block:: console\n\n    $ " + recipe + "\n")
    if sigma_head:  # the σ head fitted again afterwards (bandsynth.uncertainty.fitting.fit_sigma_head)
        head_recipe = sigma_head.pop("recipe", "")
        out.append("Its σ head was then fitted again, the rest of the network fixed (:doc:`/uncertainty`):\n")
        out.append(_field_list(sorted(sigma_head.items())))
        if head_recipe:
            out.append(".. code-block:: console\n\n    $ " + head_recipe + "\n")
    while start:  # fine-tuned: the runs it started from, newest first
        start = dict(start)
        out.append(f"It started from the weights of ``{start.get('path')}``, made by:\n\n"
                   ".. code-block:: console\n\n    $ " + str(start.get("recipe") or "(not recorded)") + "\n")
        start = start.get("init")
    out.append(_heading("Held-out metrics", "-"))
    table, split = _metrics_table(card.metrics)
    if table is None:
        out.append("The card records no held-out metrics.\n")
    else:
        out.append(
            f"On the {split} split, measured by ``bandsynth evaluate`` (:doc:`/evaluating`); pixel metrics in "
            "one model-independent asinh-scaled space (`bandsynth.evaluation.metric_space`) as in the paper, "
            "W1 distances of the Gini and M20 distributions on a shared scale, magnitude errors in mag.\n"
        )
        out.append(table)
    robustness = _robustness_rows(card)
    if robustness:
        out.append(_heading("Robustness", "-"))
        out.append(
            "The same metrics on new galaxies unlike the training data (``bandsynth evaluate --robustness``): "
            "the other observing mode and shifted populations.  In survey mode the truth itself carries "
            "sky and Poisson noise, which dominates the faint outskirts in the asinh-scaled space of an "
            "ideal-mode model: low scores there for every method say the model (and any baseline) "
            "cannot be judged, or used, on noisy data without retraining.\n"
        )
        out.append(_list_table(ROBUSTNESS_HEADER, robustness))
    noise_free = dict(card.metrics.get("noise_free_truth", {}))
    if noise_free:
        out.append(_heading("Against the noise-free truth", "-"))
        out.append(
            "The observed target of a survey-mode galaxy carries sky and Poisson noise that no input can "
            "predict, which caps every method's SSIM and PSNR above.  The mock universe also knows the "
            "noise-free image (``benchmarks/zoo_table.py``): the model scored against it, and the ceiling -- "
            "an oracle that knows the noise-free image, scored against the observed target -- on "
            f"{_value(noise_free.get('n_galaxies'))} test galaxies.\n"
        )
        rows = [[label, *(_value(dict(noise_free.get(key, {})).get(m)) for m in ("ssim", "psnr", "mae"))]
                for key, label in (("model_vs_noise_free", "model against the noise-free target"),
                                   ("ceiling_vs_observed", "noise ceiling against the observed target"))]
        out.append(_list_table(["comparison", "SSIM", "PSNR", "MAE"], rows))
    out.append(_heading("Uncertainty calibration", "-"))
    calib = dict(card.calibration)
    meaning = dict(getattr(card, "uncertainty", {}) or {})
    if meaning:
        out.append(_field_list([(k.replace("_", " ").capitalize(), v) for k, v in meaning.items()]))
    if not calib:
        out.append(
            "Not calibrated: the uncertainty is the network's raw σ, and every prediction warns "
            "(see :doc:`/uncertainty`).\n"
        )
    elif card.outputs:
        out.append(
            "One calibration per band written, fitted on the request with every other band at hand, per "
            "``predict`` configuration; a request from a number of bands not calibrated below is predicted "
            "with that band's calibration and a warning that its coverage is not measured.  Temperatures "
            "multiply σ and depend on the predicted (scaled) brightness.\n"
        )
        rows = [[f"{band} from {'+'.join(dict(entry).get('inputs', ()))}: {config}",
                 *_calibration_row(config, dict(c))[1:]]
                for band, entry in calib.items()
                for config, c in dict(dict(entry).get("configurations", {})).items()]
        out.append(_list_table(["request: configuration", *CALIBRATION_HEADER[1:]], rows))
        out.append(_by_n_inputs_table(calib))
        out.append("What these numbers mean: :doc:`/uncertainty`.\n")
    elif all(hasattr(v, "items") for v in calib.values()):
        out.append(
            "One calibration per ``predict`` configuration; a configuration not listed here is "
            "predicted with the uncalibrated σ and a warning.  Temperatures multiply σ and depend on "
            "the predicted (scaled) brightness.\n"
        )
        out.append(_list_table(CALIBRATION_HEADER, [_calibration_row(k, dict(v)) for k, v in calib.items()]))
        out.append("What these numbers mean: :doc:`/uncertainty`.\n")
    else:  # a single calibration (older cards)
        out.append(_field_list([(k.replace("_", " ").capitalize(), v) for k, v in calib.items()]))
        out.append("What these numbers mean: :doc:`/uncertainty`.\n")
    out.append(_heading("Licence and citation", "-"))
    out.append(
        _field_list(
            [
                ("Licence", card.licence),
                ("Cite", card.citation),
                ("bandsynth version", card.bandsynth_version),
            ]
        )
    )
    return "\n".join(out)


CALIBRATION_HEADER = ["configuration", "stated errors", "temperature (faint → bright)", "1σ coverage", "2σ coverage",
                      "per-galaxy 1σ coverage, 10-90 %", "galaxies", "pixels", "fitted on"]


def _by_n_inputs_table(calib):
    """An any-band card's calibrations of requests from fewer bands: 1σ coverage per band and number at hand."""
    sizes = sorted({int(n) for entry in calib.values() for n in dict(dict(entry).get("by_n_inputs", {}))})
    if not sizes:
        return ""
    rows = [[band, *(_value(dict(dict(dict(dict(entry).get("by_n_inputs", {})).get(str(n), {})).get("plain", {}))
                            .get("coverage_1sigma")) for n in sizes)] for band, entry in calib.items()]
    return ("Requests from fewer bands are calibrated per number of bands at hand, on requests drawn at "
            "random (a different set for each calibration galaxy), and predicted without a warning: their "
            "coverage is measured over the requests of that size, not for each set of bands.  The 1σ "
            "coverage of the ``plain`` configuration on the calibration galaxies:\n\n"
            + _list_table(["band", *(f"from {n}" for n in sizes)], rows))


def _calibration_row(configuration, entry):
    temperatures = entry.get("temperatures") or ()
    spread = entry.get("galaxy_coverage_1sigma_p10_p90")
    from bandsynth.uncertainty import Calibration

    cal = Calibration(configuration, (), (), entry)  # its stated distribution only
    stated = "–" if "distribution" not in entry else (
        f"{cal.distribution}, β = {cal.shape:g}, 2σ at {cal.half_width_2sigma:.2f}σ")
    return [
        configuration,
        stated,
        " ".join(f"{float(v):.3g}" for v in temperatures) if temperatures else _value(entry.get("temperature")),
        _value(entry.get("coverage_1sigma")),
        _value(entry.get("coverage_2sigma")),
        "–" if not spread else f"{float(spread[0]):.2f}-{float(spread[1]):.2f}",
        _value(entry.get("n_galaxies")),
        _value(entry.get("n_pixels")),
        _value(entry.get("fitted_on", entry.get("split"))),
    ]


def _kind(card):
    """``interpolation`` when the output lies between the inputs in wavelength (``any band`` for an any-band card)."""
    from bandsynth.bands import get_band

    if card.outputs:
        return "any band"
    waves = [get_band(b).wavelength for b in card.inputs]
    target = get_band(card.output).wavelength
    return "interpolation" if min(waves) < target < max(waves) else "extrapolation"


def _training_data(card):
    """``ideal``, ``survey`` (the simple survey mode) or ``survey layer (PRESET)``."""
    return card.mode if card.survey is None else f"survey layer ({card.survey})"


def zoo_summary(cards):
    """The reST included by ``models.rst``: a table and toctree of the cards, or a notice."""
    if not cards:
        return (
            ".. note::\n\n"
            "   No trained model ships with this version of bandsynth.  ``bandsynth models`` lists\n"
            "   none and ``Translator.load`` knows no name; train your own\n"
            "   (:doc:`/training`) and load it by path.\n"
        )
    rows = []
    for card in cards:
        test = dict(card.metrics.get("test", {})) if card.metrics else {}
        model = dict(test.get("model", {}))
        rows.append(
            [
                f":ref:`{card.name} <model-{card.name}>`",
                " + ".join(card.inputs) if not card.outputs else "any of " + ", ".join(card.inputs),
                card.output or "any one not read",
                _kind(card),
                _training_data(card),
                card.preset,
                _value(model.get("ssim", float("nan"))),
                _value(model.get("psnr", float("nan"))),
            ]
        )
    lines = [".. list-table::", "   :header-rows: 1", ""]
    header = ["model", "inputs", "output", "kind", "training data", "preset", "SSIM (test)", "PSNR (test)"]
    for row in [header, *rows]:
        lines.append(f"   * - {row[0]}")
        lines.extend(f"     - {_escape(c)}" for c in row[1:])
    toctree = ["", ".. toctree::", "   :hidden:", ""] + [f"   generated/zoo/{c.name}" for c in cards]
    return "\n".join(lines + toctree) + "\n\n" + _zoo_quality_tables(cards)


def _zoo_quality_tables(cards):
    """The paper-style table of every model next to its baselines, and the robustness rows."""
    header = ["model", "method", "MAE", "SSIM", "PSNR [dB]", "W1 Gini", "W1 M20", "SSIM gain",
              "1σ coverage", "2σ coverage", "Δmag total (median)", "|Δmag| total (median)"]
    rows = []
    for card in cards:
        test = dict(card.metrics.get("test", {})) if card.metrics else {}
        for method, label in METHOD_LABELS.items():
            row = dict(test.get(method, {}))
            if not row:
                continue
            rows.append(
                [card.name if method == "model" else "", label.replace("baseline: ", "")]
                + [_value(row.get(k)) for k in ("mae", "ssim", "psnr", "gini_w1", "m20_w1")]
                + [_value(_ssim_gain(row))]
                + [_value(row.get(k)) for k in ("coverage_1sigma", "coverage_2sigma", "dmag_total", "dmag_total_abs")]
            )
    if not rows:
        return ""
    out = [
        _heading("Held-out quality", "~"),
        "Every model on the test split of the mock universe it was trained on, beside the two baselines "
        "measured the same way (:doc:`evaluating`): pixel metrics in one model-independent asinh-scaled "
        "space (`bandsynth.evaluation.metric_space`), W1 distances "
        "of the Gini and M20 distributions, the SSIM gain over the input band nearest the output, "
        "uncertainty coverage inside the galaxies' segmentation footprints (targets 0.68 and 0.95) and the "
        "total-flux error in mag in the Kron aperture: its median (the bias) and the median of its absolute "
        "value (the typical error).  Regenerate it from the shipped weights with "
        "``python benchmarks/zoo_table.py``.\n",
        _list_table(header, rows),
    ]
    robustness = [[card.name, *row] for card in cards for row in _robustness_rows(card)]
    if robustness:
        out += [
            _heading("Robustness", "~"),
            "The same metrics on new galaxies unlike each model's training data: the other observing "
            "mode, only starbursts, only edge-on disks (details on each model's page).\n",
            _list_table(["model", *ROBUSTNESS_HEADER], robustness),
        ]
    return "\n".join(out)


# ---------------------------------------------------------------------- command line
def cli_reference():
    """reST with the ``--help`` output of ``bandsynth`` and each of its sub-commands."""
    import argparse

    from bandsynth.cli import build_parser

    parser = build_parser()
    parts = [_heading("``bandsynth``", "-"), ".. code-block:: text\n", _indent(_help(parser))]
    for action in parser._actions:  # argparse offers no public way to list sub-parsers
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                parts += [_heading(f"``bandsynth {name}``", "-"), ".. code-block:: text\n", _indent(_help(sub))]
    return "\n".join(parts)


def _help(parser):
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        parser.print_help()
    return buffer.getvalue()


def _indent(text):
    return "\n".join(("    " + line) if line.strip() else "" for line in text.splitlines()) + "\n"


# ---------------------------------------------------------------------- bands, FITS header
def bands_table():
    """List-table of the registered bands."""
    from bandsynth.bands import list_bands

    rows = [
        [
            f"``{b.name}``",
            ", ".join(f"``{a}``" for a in b.aliases) or "–",
            b.survey,
            f"{b.wavelength.to_value('nm'):g}",
            f"{b.width.to_value('nm'):g}",
            f"{b.psf_fwhm.to_value('arcsec'):g}",
        ]
        for b in list_bands()
    ]
    header = ["band", "aliases", "survey", "λ_eff [nm]", "width [nm]", "typical PSF FWHM [arcsec]"]
    lines = [".. list-table::", "   :header-rows: 1", ""]
    for row in [header, *rows]:
        lines.append(f"   * - {row[0]}")
        lines.extend(f"     - {c}" for c in row[1:])
    return "\n".join(lines) + "\n"


def example_fits_header():
    """A literal block with the primary header of a real prediction, as bandsynth writes it to FITS.

    A 64 x 64 mock galaxy's NUV and Ks images are written to files, read back with
    ``BandStack.from_fits`` and the r band predicted with the shipped ``nuv_k_to_r_paper``:
    every keyword is the one a user's file gets (only the date, checksums and paths differ).
    """
    import tempfile

    from astropy.io import fits

    from bandsynth import BandStack, Translator
    from bandsynth.datasets import make_galaxy

    galaxy = make_galaxy(123, bands=["NUV", "Ks"], size=64)
    with tempfile.TemporaryDirectory() as tmp:
        files = {band: Path(tmp) / f"g123_{band.lower()}.fits" for band in ("NUV", "Ks")}
        for band, path in files.items():
            galaxy[band].write(path)
        stack = BandStack.from_fits({band: str(path) for band, path in files.items()})
        Translator.load("nuv_k_to_r_paper").predict_to_fits(stack, Path(tmp) / "g123_r_synth.fits")
        header = fits.getheader(Path(tmp) / "g123_r_synth.fits")
    text = "\n".join(line.rstrip() for line in header.tostring(sep="\n", endcard=False, padding=False).split("\n"))
    return ".. code-block:: text\n\n" + _indent(text.rstrip())


# ---------------------------------------------------------------------- build hook
def _write_if_changed(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def write_generated(srcdir, *, cards=None):
    """Write the generated pages under ``srcdir/generated``; returns the paths written."""
    from bandsynth.models.zoo import list_models

    srcdir = Path(srcdir)
    out = srcdir / "generated"
    cards = list_models() if cards is None else list(cards)
    zoo = out / "zoo"
    zoo.mkdir(parents=True, exist_ok=True)
    keep = {f"{c.name}.rst" for c in cards}
    for stale in zoo.glob("*.rst"):  # a model that no longer ships must not keep its page
        if stale.name not in keep:
            stale.unlink()
    paths = []
    for card in cards:
        _write_if_changed(zoo / f"{card.name}.rst", card_page(card))
        paths.append(zoo / f"{card.name}.rst")
    _write_if_changed(out / "zoo_summary.inc", zoo_summary(cards))
    _write_if_changed(out / "cli.inc", cli_reference())
    _write_if_changed(out / "bands.inc", bands_table())
    _write_if_changed(out / "fits_header.inc", example_fits_header())
    demo = srcdir / "_static" / "demo_panel.png"
    panel = (
        ".. figure:: /_static/demo_panel.png\n"
        "   :alt: NUV and Ks inputs, true r band, predicted r band, residual and uncertainty of a mock galaxy\n\n"
        "   ``bandsynth demo``: a mock galaxy's r band predicted from its NUV and Ks images, next to the\n"
        "   truth, the residual and the predicted uncertainty.\n"
        if demo.exists()
        else ""
    )
    _write_if_changed(out / "demo_panel.inc", panel)
    paths += [out / n for n in ("zoo_summary.inc", "cli.inc", "bands.inc", "fits_header.inc", "demo_panel.inc")]
    return paths


def _builder_inited(app):
    write_generated(app.srcdir)


# ---------------------------------------------------------------------- gallery scraper
_SCRAPED = []  # figures already shown by the current example (kept alive so ids stay unique)


def reset_figure_scraper(gallery_conf, fname):
    """sphinx-gallery ``reset_modules`` hook: forget the previous example's figures."""
    _SCRAPED.clear()


def figure_scraper(block, block_vars, gallery_conf):
    """Save every `~matplotlib.figure.Figure` a code block left in a global variable.

    Figures made through pyplot are left to sphinx-gallery's own matplotlib
    scraper; this one picks up figures built directly (as `bandsynth.plotting`
    does), each once, in the order their variables were defined.
    """
    from matplotlib.figure import Figure
    from sphinx_gallery.scrapers import figure_rst

    seen = {id(f) for f in _SCRAPED}
    new = []
    for value in block_vars["example_globals"].values():
        figures = value if isinstance(value, (list, tuple)) else [value]
        for fig in figures:
            if isinstance(fig, Figure) and fig.canvas.manager is None and id(fig) not in seen:
                seen.add(id(fig))
                new.append(fig)
    paths = []
    for fig, path in zip(new, block_vars["image_path_iterator"]):
        fig.savefig(path, dpi=90)
        _SCRAPED.append(fig)
        paths.append(path)
    return figure_rst(paths, gallery_conf["src_dir"]) if paths else ""


class ExampleOrder:
    """sphinx-gallery sort key: the examples in reading order, any others after them."""

    ORDER = (
        "plot_quickstart.py",
        "plot_reproject.py",
        "plot_uncertainty.py",
        "plot_framing.py",
        "plot_interpolation_extrapolation.py",
        "plot_morphology.py",
        "plot_any_band.py",
        "plot_batch.py",
    )

    def __init__(self, src_dir):
        self.src_dir = src_dir

    def __call__(self, filename):
        name = Path(filename).name
        return (self.ORDER.index(name) if name in self.ORDER else len(self.ORDER), name)

    def __repr__(self):  # a stable value, so Sphinx's environment cache is not invalidated
        return f"<{type(self).__name__}>"


def setup(app):
    app.connect("builder-inited", _builder_inited)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
