"""numpydoc validation of the whole public API of bandsynth.

Walks the package (`pkgutil.walk_packages`) and checks every public module, that is
every module or subpackage none of whose dotted name's parts starts with ``_``; a
new module is covered as soon as it exists.  In each module, every class and
function named in ``__all__`` is checked, together with the public methods,
class and static methods and properties its classes define; a module without
``__all__`` (or with an empty one) exposes no public API.

Checks: GL08 (no docstring), PR01/PR02 (parameters missing from or unknown to the
docstring) and RT01 (no Returns section; a generator's Yields section counts).
Result records (NamedTuples and dataclasses) document their fields in an
``Attributes`` section instead of ``Parameters``; a property's docstring says what
it is and needs no Returns section.
"""

import dataclasses
import importlib
import inspect
import pkgutil

import pytest

numpydoc_validate = pytest.importorskip("numpydoc.validate")

import bandsynth  # noqa: E402

CHECKS = {"GL08", "PR01", "PR02", "RT01"}


def _public_modules():
    """The dotted names of bandsynth and of all its public modules and subpackages."""
    names = ["bandsynth"]

    def onerror(name):
        raise ImportError(f"cannot import {name} while walking bandsynth")

    for info in pkgutil.walk_packages(bandsynth.__path__, "bandsynth.", onerror=onerror):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue  # private modules, and cli.__main__ (running it would run the CLI)
        names.append(info.name)
    return sorted(names)


MODULES = _public_modules()


def _is_record(obj):
    return isinstance(obj, type) and (dataclasses.is_dataclass(obj) or hasattr(obj, "_fields"))


def _fields(cls):
    if dataclasses.is_dataclass(cls):
        return [f.name for f in dataclasses.fields(cls)]
    return list(cls._fields)


def _is_method(value):
    return inspect.isfunction(value) or isinstance(value, (property, classmethod, staticmethod))


def _targets():
    seen = set()
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue  # constants and units are documented in the module docstring
            if not obj.__module__.split(".")[0] == "bandsynth":
                continue  # re-exported from another package
            qualname = f"{obj.__module__}.{obj.__qualname__}"
            if qualname in seen:
                continue
            seen.add(qualname)
            yield qualname, obj
            if inspect.isclass(obj):
                for attr, value in vars(obj).items():
                    if attr.startswith("_") or not _is_method(value):
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


def test_every_public_module_is_walked():
    expected = {
        "bandsynth.stack", "bandsynth.batch.run", "bandsynth.cli", "bandsynth.datasets.store",
        "bandsynth.datasets.mock.universe", "bandsynth.nn.training.loop", "bandsynth.nn.losses",
        "bandsynth.uncertainty.calibration", "bandsynth.models.zoo", "bandsynth.metrics.pixel",
        "bandsynth.morphology.measure",
    }
    assert set(MODULES) >= expected
    assert not any(part.startswith("_") for name in MODULES for part in name.split("."))
    checked = {q.rsplit(".", 1)[0] for q in TARGETS}
    assert checked >= {"bandsynth.units", "bandsynth.fits_io", "bandsynth.errors", "bandsynth.stack"}
    assert len(TARGETS) > 300
