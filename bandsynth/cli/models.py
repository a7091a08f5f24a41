"""``bandsynth models [MODEL]``: the shipped models, or one model's card."""

from __future__ import annotations

from ._common import UsageError


def add_parser(subparsers):
    p = subparsers.add_parser(
        "models", help="list the shipped models, or show one model's card",
        description="Without MODEL: a table of the shipped models (bands, training images, pixel scale, PSF, held-out "
                    "SSIM and PSNR). With MODEL (a shipped name or the path of a saved model): its card, "
                    "i.e. what the model expects (bands, pixel scale, PSF) and how well it did.",
    )
    p.add_argument("model", nargs="?", metavar="MODEL", help="show this model's card")
    p.add_argument("--json", action="store_true", help="print the card as JSON (with MODEL)")
    p.set_defaults(func=run)
    return p


def _metric(metrics, key):
    value = metrics.get("model", {}).get(key) if metrics else None
    return "-" if value is None else f"{value:.3f}"


def _psf(card):
    if not card.psf_fwhm:
        return "-"
    bands = dict.fromkeys((*card.inputs, *card.writes))
    values = {card.psf_fwhm.get(b) for b in bands}
    if len(values) == 1 and None not in values:
        return f'{values.pop():.2f}"'
    if card.outputs and None not in values:  # an any-band model: the range over its bands
        return f'{min(values):.2f}-{max(values):.2f}"'
    return "/".join("-" if card.psf_fwhm.get(b) is None else f"{card.psf_fwhm[b]:.2f}" for b in bands) + '"'


def format_table(cards) -> str:
    """The zoo as an aligned text table, with what each model expects of its inputs."""
    head = ("name", "v", "inputs", "output", "trained on", "preset", "pixel", "PSF FWHM", "SSIM", "PSNR")
    rows = [head]
    for card in cards:
        test = card.metrics.get("test", {})
        inputs = (f"any of {len(card.inputs)}: {card.inputs[0]}...{card.inputs[-1]}" if card.outputs
                  else "+".join(card.inputs))
        rows.append((card.name, str(card.version), inputs, "any other" if card.outputs else card.output,
                     card.trained_on,
                     card.preset, f'{card.pixel_scale:.3f}"', _psf(card), _metric(test, "ssim"),
                     _metric(test, "psnr")))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    right = {1, 6, 7, 8, 9}
    lines = ["  ".join(v.rjust(w) if i in right else v.ljust(w) for i, (v, w) in enumerate(zip(r, widths))).rstrip()
             for r in rows]
    lines.append("trained on: the survey layer (mock galaxies as the surveys observe them: the models for observed "
                 "images), observed galaxies (last), or the method paper's ideal or noisy mock images (the *_paper "
                 "models).")
    lines.append("pixel: arcsec per pixel of the training images; PSF FWHM in arcsec (inputs/output when they "
                 "differ); SSIM, PSNR: held-out test split (survey layer: against the noise-free truth).")
    lines.append("v: the model's version (NAME@v loads it).  `bandsynth models NAME` shows a model's card.")
    return "\n".join(lines)


def _training_images(card):
    if card.survey is not None or card.observed_data:
        return "images as the surveys deliver them: for observed images"
    return "common PSF, no noise" if card.mode == "ideal" else "per-band PSF and noise"


def _plain_coverage(configurations):
    """The 1-sigma coverage of a request's ``plain`` calibration, NaN where it has none."""
    return dict(dict(configurations).get("plain", {})).get("coverage_1sigma", float("nan"))


def _version_line(card, path, shipped):
    """The card's version, with a call that loads it: ``NAME@VERSION`` pins a shipped model, a path is itself."""
    if shipped:
        return f"  version       {card.version} (Translator.load(\"{card.name}@{card.version}\") insists on it)"
    # "NAME@1" names a shipped model only: for a user's model it fails with "unknown model".
    stem = str(path)[: -len(".json")] if str(path).endswith(".json") else str(path)
    return f"  version       {card.version} (a saved model: Translator.load({stem!r}) loads it)"


def format_card(card, path, *, shipped=True) -> str:
    """One model's card as text; ``shipped`` says whether ``path`` is a shipped model's card (else a user's)."""
    training = card.training or {}
    lines = [
        (f"{card.name}: any of {', '.join(card.outputs)} from any of {', '.join(card.inputs)}" if card.outputs
         else f"{card.name}: {' + '.join(card.inputs)} -> {card.output}"),
        _version_line(card, path, shipped),
        f"  card          {path}",
        f"  trained on    {card.trained_on}: {_training_images(card)}",
        f"  pixel scale   {card.pixel_scale:g} arcsec/pixel (inputs far from it are warned about)",
    ]
    if card.psf_fwhm:
        psf = ", ".join(f"{b} {card.psf_fwhm[b]:g}\"" for b in dict.fromkeys((*card.inputs, *card.writes))
                        if b in card.psf_fwhm)
        lines.append(f"  PSF FWHM      {psf}")
    lines.append(f"  unit          {card.unit}")
    lines.append(f"  network       {card.preset} preset, {card.n_parameters:,} parameters")
    if training.get("data"):
        lines.append(f"  training data {training['data']}")
    if training.get("recipe"):
        lines.append(f"  recipe        {training['recipe']}")
    test = card.metrics.get("test", {}) if card.metrics else {}
    for method in ("model", "nearest_input", "linear_colour"):
        row = test.get(method)
        if row:
            flux = (f"  |dmag| {row['dmag_total_abs']:.3f} mag (median; signed median {row['dmag_total']:+.3f})"
                    if row.get("dmag_total_abs") is not None and row.get("dmag_total") is not None else "")
            lines.append(f"  {test.get('split', 'test')} {method:<14} SSIM {_metric({'model': row}, 'ssim')}  "
                         f"PSNR {_metric({'model': row}, 'psnr')}  MAE {_metric({'model': row}, 'mae')}{flux}")
    lines.append(f"  receptive     {card.receptive_field} pixels (inputs beyond it never change a pixel)")
    if card.outputs:
        lines.append("  colour model  per request, x_out = a + sum c_i x_i over the bands at hand, from the training "
                     "pixels' moments (the network corrects it)")
    elif card.baseline and card.baseline.get("kind") == "scaled":  # linear in the asinh units, not in flux
        terms = " + ".join(f"{c:.3g} x_{b}" for b, c in dict(card.baseline.get("coefficients", {})).items())
        lines.append(f"  colour model  x_{card.output} = {card.baseline.get('intercept', 0.0):.3g} + {terms}, x the "
                     "asinh-scaled bands: a power-law SED in flux (the network corrects it)")
    elif card.baseline:
        coefficients = " + ".join(f"{c:.3g} {b}" for b, c in dict(card.baseline.get("coefficients", {})).items())
        lines.append(f"  colour model  {card.output} = {coefficients}, linear in flux (the network corrects it)")
    for band, entry in (card.calibration or {}).items() if card.outputs else ():
        for config, calibration in dict(entry.get("configurations", {})).items():
            lines.append(f"  uncertainty   {band} from {'+'.join(entry.get('inputs', ()))}, {config}: 1-sigma coverage "
                         f"{calibration.get('coverage_1sigma', float('nan')):.3f} (calibrated)")
        for request in entry.get("requests", ()):
            lines.append(f"  uncertainty   {band} from {'+'.join(request.get('inputs', ()))}, plain: 1-sigma coverage "
                         f"{_plain_coverage(request.get('configurations', {})):.3f} (calibrated on its own)")
        by_size = dict(entry.get("by_n_inputs", {}))
        if by_size:
            coverage = ", ".join(f"{n}: {_plain_coverage(c):.3f}"
                                 for n, c in sorted(by_size.items(), key=lambda item: int(item[0])))
            lines.append(f"  uncertainty   {band} from fewer bands drawn at random, plain: 1-sigma coverage by "
                         f"number at hand {coverage} (calibrated)")
    for config, entry in (card.calibration or {}).items() if not card.outputs else ():
        lines.append(f"  uncertainty   {config}: 1-sigma coverage {entry.get('coverage_1sigma', float('nan')):.3f}, "
                     f"2-sigma {entry.get('coverage_2sigma', float('nan')):.3f} (calibrated)")
    if not card.calibration:
        lines.append("  uncertainty   not calibrated")
    if card.description:
        lines.append(f"  description   {card.description}")
    lines.append(f"  licence       {card.licence}")
    lines.append(f"  cite          {card.citation}")
    return "\n".join(lines)


def run(args) -> int:
    from ..models.zoo import WEIGHTS_DIR, list_models, model_files, verified_model

    if args.model is None:
        if args.json:
            raise UsageError("--json needs a MODEL")
        cards = list_models()
        if not cards:
            print("no models ship with this version of bandsynth")
            return 0
        print(format_table(cards))
        return 0
    try:
        # Both hashes checked, as Translator.load checks them: a damaged model is not shown as fine.
        weights, card = verified_model(args.model)  # NAME@VERSION checked
    except (ValueError, FileNotFoundError) as err:  # WeightsHashError and CardHashError are ValueErrors
        raise UsageError(str(err)) from None
    card_path = model_files(weights)[1]
    shipped = card_path.parent.resolve() == WEIGHTS_DIR.resolve()
    print(card.to_json().rstrip() if args.json else format_card(card, card_path, shipped=shipped))
    return 0
