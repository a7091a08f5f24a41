"""Tests of the documentation: generated pages, API coverage, and the built site in a browser.

The browser check needs a built site (``sphinx-build -b html docs docs/_build/html``, or
the folder named by ``BANDSYNTH_DOCS_SITE``),
Chromium, chromedriver and selenium; it runs only with ``BANDSYNTH_DOCS=1`` (as
``.ci/docs`` does).  The other tests are fast and run everywhere.
"""

import importlib
import os
import pkgutil
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest

import bandsynth

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SITE = Path(os.environ.get("BANDSYNTH_DOCS_SITE", DOCS / "_build" / "html"))
sys.path.insert(0, str(DOCS / "_ext"))

import bandsynth_docs  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def _card(**changes):
    from bandsynth.models.zoo import ModelCard

    scaling = {b: {"softening": 0.02, "maximum": 1.0} for b in ("FUV", "NUV", "g", "r", "Ks")}
    fields = dict(
        name="nuv_k_to_r_paper",
        inputs=("NUV", "Ks"),
        output="r",
        preset="paper",
        architecture={},
        scaling=scaling,
        training={
            "data": "bandsynth mock universe",
            "data_info": {"n_galaxies": 2000, "seed": 0, "size": 128},
            "epochs": 20,
            "recipe": "bandsynth train --inputs NUV K --output r --out runs/nuv_k_to_r_paper",
        },
        metrics={
            "test": {
                "split": "test",
                "model": {"mae": 0.0123, "ssim": 0.9512, "psnr": 31.25, "ssim_gain_NUV": 0.4321},
                "nearest_input": {"mae": 0.0875, "ssim": 0.4467, "psnr": 18.5},
                "linear_colour": {"mae": 0.0301, "ssim": 0.8811, "psnr": 25.0},
            }
        },
        calibration={"plain": {"centres": [0.05, 0.4], "temperatures": [0.873, 1.25], "coverage_1sigma": 0.683,
                               "coverage_2sigma": 0.951, "galaxy_coverage_1sigma_p10_p90": [0.61, 0.77],
                               "n_galaxies": 75, "n_pixels": 120000, "fitted_on": "calibration half"}},
        sha256="ab" * 32,
        n_parameters=2851138,
    )
    fields.update(changes)
    return ModelCard(**fields)


# ---------------------------------------------------------------------- model zoo pages
def test_card_page_shows_inputs_metrics_baselines_and_calibration():
    page = bandsynth_docs.card_page(_card())
    assert page.startswith(".. _model-nuv_k_to_r_paper:")
    assert "Predicts **r** from **NUV + Ks** (interpolation)" in page
    for text in ("0.9512", "0.4467", "0.8811", "31.25", "SSIM gain over NUV", "0.4321"):
        assert text in page
    assert "baseline: nearest input band" in page and "baseline: linear colour model" in page
    assert "0.873 1.25" in page and "0.61-0.77" in page  # the temperatures, faint to bright
    assert "$ bandsynth train --inputs NUV K --output r --out runs/nuv_k_to_r_paper" in page
    assert "2,851,138" in page and "ab" * 32 in page


def test_card_page_shows_the_runs_a_fine_tuned_model_started_from():
    training = {**_card().training, "init": {"path": "runs/crops", "recipe": "bandsynth train --crop 64",
                                             "init": {"path": "runs/first", "recipe": None}}}
    page = bandsynth_docs.card_page(_card(training=training))
    first = page.index("It started from the weights of ``runs/crops``, made by:")
    assert page.index("$ bandsynth train --crop 64") > first
    assert page.index("It started from the weights of ``runs/first``") > first
    assert "(not recorded)" in page


def test_card_page_without_metrics_or_calibration_says_so():
    page = bandsynth_docs.card_page(_card(metrics={}, calibration={}, output="FUV", inputs=("g", "r")))
    assert "(extrapolation)" in page
    assert "The card records no held-out metrics." in page
    assert "Not calibrated" in page


def test_an_any_band_card_page_lists_what_it_reads_and_writes_and_each_bands_calibration():
    docutils_core = pytest.importorskip("docutils.core")
    calibration = {band: {"inputs": [b for b in ("g", "r", "i") if b != band],
                          "configurations": {"plain": {"centres": [0.1], "temperatures": [0.31],
                                                       "coverage_1sigma": 0.6913}}} for band in ("g", "r", "i")}
    card = _card(name="any_gri", inputs=("g", "r", "i"), output=None, outputs=("g", "r", "i"), metrics={},
                 calibration=calibration, scaling={b: {"softening": 0.02, "maximum": 1.0} for b in "gri"})
    page = bandsynth_docs.card_page(card)
    assert "Predicts any of **g, r, i** from whichever of the others an image has" in page
    assert 'translator.predict(stack, band="g")' in page
    assert "Reads (any subset)" in page and "Writes (any one not read)" in page
    assert "r from g+i: plain" in page and "0.31" in page and "0.6913" in page
    summary = bandsynth_docs.zoo_summary([card])
    assert "any of g, r, i" in summary and "any one not read" in summary and "any band" in summary
    errors = []
    docutils_core.publish_doctree(re.sub(r":(doc|ref):`([^`]*)`", r"``\2``", page),
                                  settings_overrides={"report_level": 2, "halt_level": 5,
                                                      "warning_stream": _Collect(errors)})
    assert errors == []


def test_card_page_is_valid_restructuredtext():
    docutils_core = pytest.importorskip("docutils.core")
    rst = bandsynth_docs.card_page(_card())
    # Sphinx roles (:doc:, :ref:) are unknown to plain docutils: stand them in with literals.
    rst = re.sub(r":(doc|ref):`([^`]*)`", r"``\2``", rst)
    errors = []
    docutils_core.publish_doctree(
        rst, settings_overrides={"report_level": 2, "halt_level": 5, "warning_stream": _Collect(errors)}
    )
    assert errors == []


class _Collect:
    def __init__(self, sink):
        self.sink = sink

    def write(self, text):
        if text.strip():
            self.sink.append(text)


def test_zoo_summary_without_models_says_none_ships():
    text = bandsynth_docs.zoo_summary([])
    assert "No trained model ships with this version of bandsynth" in text
    assert "toctree" not in text


def test_zoo_summary_links_every_card():
    cards = [_card(), _card(name="g_r_to_nuv_paper", inputs=("g", "r"), output="NUV")]
    text = bandsynth_docs.zoo_summary(cards)
    for card in cards:
        assert f":ref:`{card.name} <model-{card.name}>`" in text
        assert f"generated/zoo/{card.name}" in text
    assert "0.9512" in text  # the test-split SSIM column


_ROBUSTNESS = {
    "survey_mode": {
        "description": "survey-mode images of new galaxies (trained on ideal mode)",
        "split": "survey_mode",
        "model": {"n_galaxies": 60, "ssim": 0.3141, "psnr": 12.5, "mae": 0.2, "coverage_1sigma": 0.41},
        "nearest_input": {"ssim": 0.1592},
        "linear_colour": {"ssim": 0.2653},
    }
}


def test_card_page_shows_robustness_rows():
    plain = bandsynth_docs.card_page(_card())
    assert "Robustness" not in plain
    metrics = {**_card().to_dict()["metrics"], "robustness": _ROBUSTNESS}
    page = bandsynth_docs.card_page(_card(metrics=metrics))
    assert "Robustness\n----------" in page
    for text in ("survey mode", "trained on ideal mode", "0.3141", "0.1592", "0.2653", "0.41"):
        assert text in page


def test_card_page_shows_the_noise_free_comparison_of_survey_models():
    assert "noise-free" not in bandsynth_docs.card_page(_card())
    noise_free = {
        "description": "survey-mode test galaxies against their noise-free target",
        "n_galaxies": 150,
        "model_vs_noise_free": {"mae": 0.0198, "ssim": 0.8622, "psnr": 33.43},
        "ceiling_vs_observed": {"mae": 0.0638, "ssim": 0.5394, "psnr": 24.37},
    }
    metrics = {**_card().to_dict()["metrics"], "noise_free_truth": noise_free}
    page = bandsynth_docs.card_page(_card(metrics=metrics, mode="survey"))
    assert "Against the noise-free truth\n----------------------------" in page
    for text in ("0.8622", "33.43", "0.5394", "24.37", "on 150 test galaxies"):
        assert text in page


def test_zoo_summary_tables_every_model_beside_its_baselines():
    metrics = {**_card().to_dict()["metrics"], "robustness": _ROBUSTNESS}
    cards = [_card(metrics=metrics), _card(name="g_r_to_nuv_paper", inputs=("g", "r"), output="NUV")]
    text = bandsynth_docs.zoo_summary(cards)
    quality = text[text.index("Held-out quality") : text.index("Robustness")]
    assert quality.count("nearest input band") == 2 and quality.count("linear colour model") == 2
    for value in ("0.0875", "0.8811", "0.4321"):  # baselines' MAE / SSIM, the model's SSIM gain
        assert value in quality
    assert "0.3141" in text[text.index("Robustness") :]
    docutils_core = pytest.importorskip("docutils.core")
    errors = []
    rst = re.sub(r":(doc|ref):`([^`]*)`", r"``\2``", text.replace(".. toctree::", ".."))
    docutils_core.publish_doctree(
        rst, settings_overrides={"report_level": 2, "halt_level": 5, "warning_stream": _Collect(errors)}
    )
    assert errors == []


def test_write_generated_pages(tmp_path):
    paths = bandsynth_docs.write_generated(tmp_path, cards=[_card()])
    assert {p.name for p in paths} == {
        "nuv_k_to_r_paper.rst", "zoo_summary.inc", "cli.inc", "bands.inc", "fits_header.inc", "demo_panel.inc",
    }
    generated = tmp_path / "generated"
    assert (generated / "demo_panel.inc").read_text() == ""  # no picture, no figure
    # A model that stops shipping loses its page.
    bandsynth_docs.write_generated(tmp_path, cards=[])
    assert not (generated / "zoo" / "nuv_k_to_r_paper.rst").exists()
    assert "No trained model ships" in (generated / "zoo_summary.inc").read_text()


def test_cli_reference_covers_every_subcommand():
    import argparse

    from bandsynth.cli import build_parser

    text = bandsynth_docs.cli_reference()
    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    assert len(sub.choices) >= 5
    for name in sub.choices:
        assert f"``bandsynth {name}``" in text
        assert f"usage: bandsynth {name}" in text


def test_bands_table_lists_every_band():
    from bandsynth.bands import list_bands

    table = bandsynth_docs.bands_table()
    for band in list_bands():
        assert f"``{band.name}``" in table


def test_fits_page_documents_the_keywords_the_writer_writes():
    """Every keyword of the FITS page's table is in a real header, and vice versa (the checksums: its text)."""
    page = (DOCS / "fits_format.rst").read_text()
    table = page[page.index("Keywords of the primary header") : page.index("An example")]
    names = re.findall(r"^``([A-Z0-9n]+)``", table, re.M)
    documented = {k[:-1] + "1" if k.endswith("n") else k for k in names}
    header = bandsynth_docs.example_fits_header()
    written = set(re.findall(r"^    ([A-Z][A-Z0-9]*) *=", header, re.M)) | set(re.findall(r"^    (HISTORY)", header, re.M))
    structural = {"SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND", "WCSAXES", "CRPIX1", "CRPIX2",
                  "CDELT1", "CDELT2", "CUNIT1", "CUNIT2", "CTYPE1", "CTYPE2", "CRVAL1", "CRVAL2", "LONPOLE",
                  "LATPOLE", "MJDREF", "RADESYS", "EQUINOX", "BSIN2", "BSINF2", "BSINS2", "BSINH2", "BSSC2", "BSSOFT2",
                  "BSMAX2", "BSSC3", "BSSOFT3", "BSMAX3", "CHECKSUM", "DATASUM"}  # fmt: skip
    assert documented - written == set()
    assert written - documented - structural == set()


# ---------------------------------------------------------------------- API reference coverage
def _public_modules():
    for info in pkgutil.walk_packages(bandsynth.__path__, "bandsynth."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        yield importlib.import_module(info.name)


def test_every_public_name_has_an_api_page():
    documented_modules = set()
    for page in (DOCS / "reference").glob("*.rst"):
        documented_modules.update(re.findall(r"^\.\. automodapi:: (\S+)", page.read_text(), re.M))
    documented = {}
    for name in documented_modules:
        module = importlib.import_module(name)
        assert hasattr(module, "__all__"), f"{name} is documented but has no __all__"
        for attr in module.__all__:
            documented.setdefault(id(getattr(module, attr)), []).append(f"{name}.{attr}")
    missing = []
    for module in [bandsynth, *_public_modules()]:
        for attr in getattr(module, "__all__", ()):
            if id(getattr(module, attr)) not in documented:
                missing.append(f"{module.__name__}.{attr}")
    assert missing == [], f"public names without an API page (add an automodapi page in docs/reference): {missing}"


def test_examples_follow_the_gallery_conventions():
    examples = sorted((ROOT / "examples").glob("plot_*.py"))
    assert len(examples) >= 6
    assert sorted(bandsynth_docs.ExampleOrder.ORDER) == sorted(p.name for p in examples)
    for path in examples:
        text = path.read_text()
        assert text.startswith('"""\n'), f"{path.name}: a gallery example starts with its docstring"
        title, underline = text.splitlines()[1:3]
        assert underline == "=" * len(title), f"{path.name}: title underline"
        shipped = {card.name for card in bandsynth.list_models()}
        for name in re.findall(r'Translator\.load\("(\w+)"\)', text):
            assert name in shipped, f"{path.name}: loads {name!r}, which does not ship"


# ---------------------------------------------------------------------- gallery scraper
def test_figure_scraper_saves_figures_made_without_pyplot(tmp_path):
    pytest.importorskip("sphinx_gallery")
    from matplotlib.figure import Figure

    fig = Figure()
    fig.add_subplot().plot([0, 1], [1, 0])
    paths = iter(tmp_path / f"image_{i}.png" for i in range(5))
    block_vars = {"example_globals": {"fig": fig, "panels": [fig, Figure()], "x": 1}, "image_path_iterator": paths}
    bandsynth_docs.reset_figure_scraper({}, None)
    rst = bandsynth_docs.figure_scraper(None, block_vars, {"src_dir": str(tmp_path)})
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["image_0.png", "image_1.png"]
    assert "image_0.png" in rst and "image_1.png" in rst
    block_vars["image_path_iterator"] = iter(tmp_path / f"again_{i}.png" for i in range(5))
    assert bandsynth_docs.figure_scraper(None, block_vars, {"src_dir": str(tmp_path)}) == ""  # each once


# ---------------------------------------------------------------------- the built site
browser = pytest.mark.skipif(os.environ.get("BANDSYNTH_DOCS") != "1", reason="set BANDSYNTH_DOCS=1 (see .ci/docs)")


class _Links(HTMLParser):
    """Link targets and element ids of one HTML page."""

    def __init__(self):
        super().__init__()
        self.targets, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("id", "name") if tag != "meta" else ():
            if attrs.get(key):
                self.ids.add(attrs[key])
        for key in ("href", "src"):
            value = attrs.get(key)
            if value and not (tag == "a" and key == "src"):
                self.targets.append(value)


def _parse(path, cache):
    if path not in cache:
        parser = _Links()
        parser.feed(path.read_text(encoding="utf-8", errors="replace"))
        cache[path] = parser
    return cache[path]


def _is_internal(url):
    parts = urlsplit(url)
    return not parts.scheme and not parts.netloc and not url.startswith(("mailto:", "javascript:", "data:"))


def _site():
    if not (SITE / "index.html").exists():
        pytest.fail(f"no built site at {SITE}: run sphinx-build -W --keep-going -b html docs docs/_build/html")
    return SITE


@browser
def test_every_internal_link_of_the_built_site_exists():
    site = _site()
    # _static holds the theme's files, among them Jinja templates named *.html: not pages.
    pages = sorted(p for p in site.rglob("*.html") if "_static" not in p.relative_to(site).parts)
    assert len(pages) > 50
    cache, broken = {}, []
    for page in pages:
        for target in _parse(page, cache).targets:
            if not _is_internal(target):
                continue
            parts = urlsplit(target)
            path = unquote(parts.path)
            dest = page if not path else (page.parent / path).resolve()
            if path.endswith("/") or dest.is_dir():
                dest = dest / "index.html"
            if not dest.exists():
                broken.append(f"{page.relative_to(site)} -> {target}")
            elif parts.fragment and dest.suffix == ".html" and unquote(parts.fragment) not in _parse(dest, cache).ids:
                broken.append(f"{page.relative_to(site)} -> {target} (no such anchor)")
    assert broken == [], "\n".join(broken[:50])


@pytest.fixture(scope="module")
def served_site():
    """The built site served by ``python -m http.server`` on 127.0.0.1 (a free port)."""
    site = _site()
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", str(site)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = proc.stdout.readline()  # "Serving HTTP on 127.0.0.1 port 43210 (http://127.0.0.1:43210/) ..."
        match = re.search(r"port (\d+)", line)
        if not match:
            pytest.fail(f"http.server did not start: {line!r}")
        yield f"http://127.0.0.1:{match.group(1)}/"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def driver(served_site):
    """Headless Chromium through chromedriver, with a fresh profile and no network use."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    for exe in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(exe):
            pytest.fail(f"{exe} is missing: apt-get install -y chromium chromium-driver")
    os.environ["SE_OFFLINE"] = "true"  # selenium must not look for drivers on the web
    profile = tempfile.mkdtemp(prefix="bandsynth-docs-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1280,1000"):
        options.add_argument(flag)
    browser_ = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    browser_.set_page_load_timeout(60)
    try:
        yield browser_
    finally:
        browser_.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _open(driver, url):
    driver.get(url)
    driver.execute_script(
        # Lazy images load only near the viewport: scroll through the page first.
        "window.scrollTo(0, document.body.scrollHeight); window.scrollTo(0, 0);"
    )
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 30).until(
        lambda d: d.execute_script(
            "return document.readyState === 'complete' && Array.from(document.images).every(i => i.complete)"
        )
    )
    return driver.execute_script(
        "return {title: document.title,"
        " h1: Array.from(document.querySelectorAll('h1')).map(h => h.textContent),"
        " images: Array.from(document.images).map(i => [i.currentSrc || i.src, i.naturalWidth]),"
        " links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href)}"
    )


PAGES = {
    "index": "index.html",
    "Translator API": "api/bandsynth.Translator.html",
    "gallery": "auto_examples/index.html",
    "quick start example": "auto_examples/plot_quickstart.html",
}


@browser
@pytest.mark.parametrize("name", list(PAGES))
def test_page_renders_with_its_images_and_working_links(name, served_site, driver):
    url = urljoin(served_site, PAGES[name])
    page = _open(driver, url)
    assert "bandsynth" in page["title"]
    assert page["h1"], f"{name}: no heading rendered"
    broken_images = [src for src, width in page["images"] if not width]
    assert broken_images == [], f"{name}: images that did not load: {broken_images}"
    internal = sorted({link.split("#")[0] for link in page["links"] if link.startswith(served_site)})
    assert internal, f"{name}: no internal links"
    failed = []
    for link in internal:
        try:
            with urllib.request.urlopen(link, timeout=30) as response:
                if response.status != 200:
                    failed.append(f"{link}: HTTP {response.status}")
        except OSError as err:
            failed.append(f"{link}: {err}")
    assert failed == [], f"{name}: broken links: {failed}"
    if name == "gallery":
        examples = list((ROOT / "examples").glob("plot_*.py"))
        thumbs = [src for src, _ in page["images"] if "/_images/sphx_glr_plot_" in src and "_thumb" in src]
        assert len(thumbs) == len(examples), thumbs
    if name == "Translator API":
        for method in ("load", "predict", "fit", "save", "calibrate"):
            assert driver.find_elements("id", f"bandsynth.Translator.{method}"), method
    if name == "quick start example":
        assert len(page["images"]) >= 1 and all(width > 0 for _, width in page["images"])


@browser
def test_index_screenshot_is_not_blank(served_site, driver):
    """A screenshot of the front page (kept in docs/_build/screenshots/ for a person to look at)."""
    from matplotlib.image import imread

    _open(driver, urljoin(served_site, "index.html"))
    out = SITE.parent / "screenshots" / "index.png"
    out.parent.mkdir(exist_ok=True)
    assert driver.save_screenshot(str(out))
    pixels = imread(out)[..., :3]
    assert pixels.shape[0] >= 500 and pixels.shape[1] >= 1000
    dark = (pixels.mean(axis=-1) < 0.5).mean()  # text and code make some of the page dark
    assert 0.01 < dark < 0.6, f"the front page looks blank or broken ({dark:.1%} dark pixels)"
