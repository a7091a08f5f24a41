"""The benchmark scripts still run against the package, at toy sizes.

The figures in the docs and the model cards come from ``benchmarks/``; a script that no
longer runs cannot re-measure them.  Two had stopped running unnoticed (a changed private
signature, a changed worker-cache key), so every script that reaches into the package's
internals or its batch workers is run here, as a user runs it, at its smallest size; each
must exit cleanly and print its figures.  The real-data and training-length benchmarks
are left to their users.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

#: script, toy arguments, a line its figures are printed under
RUNS = [
    ("coverage_conditioning.py", ["--n-galaxies", "6"], "brightness x sigma"),
    ("cross_band_ssim.py", ["--n", "4", "--size", "32"], "(4 galaxies per mode, 32x32"),
    ("grid_offsets.py", ["--models", "g_z_to_r", "--n", "4", "--offsets", "0.5", "--restore-noise", "no"], "0.50"),
    ("metrics_speed.py", ["--n", "2"], "max |dGini|"),
    ("mock_speed.py", ["--n", "2", "--size", "32"], "make_dataset ideal (in memory)"),
    ("mock_colour_relation.py", ["--models", "nuv_k_to_r", "--n-galaxies", "4"], "nuv_k_to_r"),
    ("pixel_scale.py", ["--models", "g_r_to_u_paper", "--factors", "1.0", "1.5", "--n", "4"], "1.50"),
    ("cross_family.py", ["--train", "default", "--test", "default", "--n", "10", "--size", "32", "--epochs", "1",
                         "--preset", "tiny"], "default"),
    ("batch_speed.py", ["--n", "4", "--size", "32", "--repeat", "1", "--rss-size", "0", "--preset", "tiny",
                        "--json", "{tmp}/speed.json"], "2 workers / 1 worker"),
]


@pytest.mark.parametrize(("script", "args", "figures"), RUNS, ids=[r[0] for r in RUNS])
def test_benchmark_script_runs_at_toy_size(script, args, figures, tmp_path):
    args = [a.format(tmp=tmp_path) for a in args]
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, str(BENCHMARKS / script), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{script} {' '.join(args)} failed:\n{done.stderr[-3000:]}"
    assert figures in done.stdout, f"{script} printed no figures:\n{done.stdout[-2000:]}"
