"""numpydoc validation of the public API of the modules reorganised in issue 16.

Checks every public name in ``__all__`` (and the public methods of public classes):
GL08 (no docstring), PR01/PR02 (parameters missing from or unknown to the docstring)
and RT01 (no Returns section).  Result records (NamedTuples and dataclasses) document
their fields in an ``Attributes`` section instead of ``Parameters``.

Other modules join the list as their owners bring their docstrings up to this standard.
"""

import dataclasses
import importlib
import inspect

import pytest

numpydoc_validate = pytest.importorskip("numpydoc.validate")

MODULES = [
    "bandsynth.units",
    "bandsynth.errors",
    "bandsynth.fits_io",
    "bandsynth.metrics",
    "bandsynth.morphology",
    "bandsynth.datasets.mock",
    "bandsynth.datasets.base",
    "bandsynth.translator",
    "bandsynth.baseline",
    "bandsynth.inputs",
    "bandsynth.prediction",
    "bandsynth.tiled_prediction",
    "bandsynth.uncertainty",
    "bandsynth.models.domain",
    "bandsynth.models.zoo",
    "bandsynth.nn.network",
    "bandsynth.nn.engine",
    "bandsynth.nn.recipe",
    "bandsynth.nn.export",
]
CHECKS = {"GL08", "PR01", "PR02", "RT01"}


def _is_record(obj):
    return isinstance(obj, type) and (dataclasses.is_dataclass(obj) or hasattr(obj, "_fields"))


def _fields(cls):
    if dataclasses.is_dataclass(cls):
        return [f.name for f in dataclasses.fields(cls)]
    return list(cls._fields)


def _targets():
    seen = set()
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue  # constants and units are documented in the module docstring
            qualname = f"{obj.__module__}.{obj.__qualname__}"
            if qualname in seen:
                continue
            seen.add(qualname)
            yield qualname, obj
            if inspect.isclass(obj):
                for attr, value in vars(obj).items():
                    if attr.startswith("_") or not (inspect.isfunction(value) or isinstance(value, property)):
                        continue
                    yield f"{qualname}.{attr}", value


TARGETS = dict(_targets())


@pytest.mark.parametrize("qualname", sorted(TARGETS))
def test_numpydoc(qualname):
    obj = TARGETS[qualname]
    result = numpydoc_validate.validate(qualname)
    errors = [(code, message) for code, message in result["errors"] if code in CHECKS]
    if _is_record(obj):
        errors = [(c, m) for c, m in errors if c != "PR01"]
        documented = set()
        for names, _, _ in numpydoc_validate.Validator(numpydoc_validate.get_doc_object(obj)).doc["Attributes"]:
            documented.update(n.strip() for n in names.split(","))
        missing = [f for f in _fields(obj) if f not in documented]
        if missing:
            errors.append(("PR01", f"fields {missing} not documented in Attributes"))
    if isinstance(obj, property):
        errors = [(c, m) for c, m in errors if c != "RT01"]  # a property's docstring says what it is
    assert not errors, f"{qualname}: " + "; ".join(f"{c} {m}" for c, m in errors)


def test_every_listed_module_is_checked():
    assert {q.rsplit(".", 1)[0] for q in TARGETS} >= {"bandsynth.units", "bandsynth.fits_io", "bandsynth.errors"}
    assert len(TARGETS) > 40
