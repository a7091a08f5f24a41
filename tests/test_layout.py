"""The package layout rules of DESIGN.md, checked on the source with ``ast`` (nothing is imported).

* no import cycles among bandsynth modules, counting imports inside functions too;
* the core modules never import ``bandsynth.nn``, ``bandsynth.batch`` or ``bandsynth.cli``;
* no module imports another module's ``_private`` name (a private *module* may be
  imported by the modules of its own package, as photutils does);
* no module is longer than 800 lines, the `Translator` facade not longer than 400, no
  function longer than 100.

Exceptions are listed in the allow-lists below, each with the issue that removes it; keep
them short.  The checker itself is tested on a small fake package.
"""

import ast
import textwrap
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bandsynth"

CORE = ("bands", "units", "zeropoints", "bitmasks", "noise_maps", "scaling", "stack", "stack_io", "resample",
        "synthetic", "fits_io", "errors", "_io", "_metadata")
FORBIDDEN_FOR_CORE = ("nn", "batch", "cli")
MAX_LINES = 800

# Modules over MAX_LINES that are still to be split (issue 16).
LONG_MODULES_ALLOWED = set()

# (importing module, imported module, name): private names imported across modules, each
# with the issue that removes it.
PRIVATE_IMPORTS_ALLOWED = {
}

# Import cycles, each with the issue that removes it.
CYCLES_ALLOWED = [
]


# ---------------------------------------------------------------------- the checker
def module_names(root):
    """``{dotted name: path}`` of every module of the package at ``root``."""
    root = Path(root)
    out = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _resolve(module, is_package, level, target):
    """Absolute module name of a (possibly relative) ``from`` import in ``module``."""
    if level == 0:
        return target or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def imports(modules):
    """Every import of a package module: ``[(importer, imported module, name or None, line)]``.

    ``name`` is the imported name for ``from X import name`` when ``X.name`` is not itself
    a module (for submodules the edge goes to the submodule and ``name`` is None).
    Imports anywhere in the file count (module level, functions, classes).
    """
    top = min(modules, key=len).split(".")[0]
    out = []
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == top:
                        out.append((module, alias.name, None, node.lineno))
            elif isinstance(node, ast.ImportFrom):
                target = _resolve(module, is_package, node.level, node.module)
                if target.split(".")[0] != top:
                    continue
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    if sub in modules:
                        out.append((module, sub, None, node.lineno))
                    else:
                        out.append((module, target, alias.name, node.lineno))
    return out


def import_graph(modules):
    """``{module: set of package modules it imports}``."""
    graph = {m: set() for m in modules}
    for importer, imported, _, _ in imports(modules):
        if imported in modules and imported != importer:
            graph[importer].add(imported)
    return graph


def cycles(graph):
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def _is_private(name):
    return name.startswith("_") and not name.startswith("__")


def private_imports(modules):
    """``[(importer, imported module, name, line)]`` for imports of another module's private names.

    A private module (``pkg._utils``) may be imported by modules of ``pkg`` (and below);
    a private name (``_helper``) may not be imported from another module at all.
    """
    out = []
    for importer, imported, name, line in imports(modules):
        if name is not None and _is_private(name) and imported != importer:
            out.append((importer, imported, name, line))
        parts = imported.split(".")
        for i, part in enumerate(parts):
            if _is_private(part):
                owner = ".".join(parts[:i])  # the package the private module belongs to
                if not (importer == owner or importer.startswith(owner + ".")):
                    out.append((importer, imported, None, line))
                break
    return sorted(set(out))


def _in_layers(module, layers):
    return module in layers or module.startswith(tuple(layer + "." for layer in layers))


def core_violations(modules, core=CORE, forbidden=FORBIDDEN_FOR_CORE):
    """``[(core module, forbidden module it imports, line)]`` (direct imports)."""
    top = min(modules, key=len).split(".")[0]
    core_names = {f"{top}.{c}" for c in core}
    bad_prefixes = tuple(f"{top}.{f}" for f in forbidden)
    out = []
    for importer, imported, _, line in imports(modules):
        if importer in core_names and _in_layers(imported, bad_prefixes):
            out.append((importer, imported, line))
    return sorted(set(out))


def reachable(graph, start):
    """Modules ``start`` imports directly or through other modules."""
    seen, todo = set(), [start]
    while todo:
        for w in graph[todo.pop()]:
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return seen


def long_modules(modules, max_lines=MAX_LINES):
    """``{module: number of lines}`` of the modules longer than ``max_lines``."""
    out = {}
    for module, path in modules.items():
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > max_lines:
            out[module] = n
    return out


# ---------------------------------------------------------------------- the rules on bandsynth
@pytest.fixture(scope="module")
def package():
    return module_names(PACKAGE)


def test_no_import_cycles(package):
    found = [c for c in cycles(import_graph(package)) if c not in CYCLES_ALLOWED]
    assert not found, "import cycles among bandsynth modules (module-level or inside functions): " + "; ".join(
        " <-> ".join(c) for c in found
    )


def test_allow_list_of_cycles_is_not_stale(package):
    stale = [c for c in CYCLES_ALLOWED if c not in cycles(import_graph(package))]
    assert not stale, f"allowed import cycles that are gone (remove them from the list): {stale}"


def test_core_never_imports_nn_batch_or_cli(package):
    assert all(f"bandsynth.{c}" in package for c in CORE), "a core module is missing (update CORE)"
    found = core_violations(package)
    assert not found, "core modules import the model, batch or CLI layers: " + "; ".join(
        f"{a} imports {b} (line {line})" for a, b, line in found
    )


def test_core_does_not_reach_nn_batch_or_cli_through_other_modules(package):
    graph = import_graph(package)
    layers = tuple(f"bandsynth.{f}" for f in FORBIDDEN_FOR_CORE)
    found = {
        c: sorted(m for m in reachable(graph, f"bandsynth.{c}") if _in_layers(m, layers)) for c in CORE
    }
    found = {c: ms for c, ms in found.items() if ms}
    assert not found, f"core modules reach the model, batch or CLI layers through other modules: {found}"


def test_no_imports_of_private_names(package):
    found = [f for f in private_imports(package) if (f[0], f[1], f[2]) not in PRIVATE_IMPORTS_ALLOWED]
    assert not found, "private names imported from another module: " + "; ".join(
        f"{a} line {line}: from {b} import {n}" if n else f"{a} line {line}: imports private module {b}"
        for a, b, n, line in found
    )


def test_allow_list_of_private_imports_is_not_stale(package):
    found = {(a, b, n) for a, b, n, _ in private_imports(package)}
    stale = set(PRIVATE_IMPORTS_ALLOWED) - found
    assert not stale, f"allowed private imports that no longer happen (remove them from the list): {sorted(stale)}"


def test_no_module_over_800_lines(package):
    found = {m: n for m, n in long_modules(package).items() if m not in LONG_MODULES_ALLOWED}
    assert not found, f"modules over {MAX_LINES} lines (split them by concern): {found}"
    stale = LONG_MODULES_ALLOWED - set(long_modules(package))
    assert not stale, f"modules allowed to be long that are not any more (remove them from the list): {sorted(stale)}"


def test_no_function_over_100_lines():
    long = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 100:
                long.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} "
                            f"({node.end_lineno - node.lineno + 1} lines)")
    assert not long, f"functions over 100 lines (split them): {long}"


def test_contributors_page_shows_every_module_and_the_core():
    """docs/contributing.rst draws the tree: every module and subpackage is on it, and so is the core list."""
    page = (PACKAGE.parent / "docs" / "contributing.rst").read_text()
    tree = page[page.index("    bandsynth/"):page.index("Rules\n-----")]
    missing = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                     if p.name not in ("__init__.py", "__main__.py") and p.name not in tree)
    missing += sorted(f"{d.name}/" for d in PACKAGE.iterdir() if d.is_dir() and (d / "__init__.py").exists()
                      and f"{d.name}/" not in tree)
    assert not missing, f"modules missing from the tree on docs/contributing.rst: {missing}"
    layering = page[page.index("**Layering.**"):page.index("never import")]
    assert [m for m in CORE if f"``{m}``" not in layering] == []


def test_translator_stays_a_thin_facade():
    lines = len((PACKAGE / "translator.py").read_text().splitlines())
    assert lines <= 400, f"translator.py has {lines} lines: move the work into the module that owns it"


# ---------------------------------------------------------------------- the checker on a fake package
def _write(root, rel, text):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")


@pytest.fixture
def fake(tmp_path):
    """A tiny package ``fakepkg`` with one violation of each rule."""
    root = tmp_path / "fakepkg"
    _write(root, "__init__.py", "from .stack import Stack\n")
    _write(root, "stack.py", """
        import os
        from .units import _helper          # a private name of another module
        from . import units

        class Stack:
            def plot(self):
                from .nn.engine import run      # core -> nn, inside a method
                return run
    """)
    _write(root, "units.py", """
        def _helper():
            pass

        def convert():
            from .stack import Stack        # units -> stack -> units: a cycle through a function
            return Stack
    """)
    _write(root, "nn/__init__.py", "")
    _write(root, "nn/engine.py", "from .._private_mod import thing\n\ndef run():\n    pass\n")
    _write(root, "_private_mod.py", "thing = 1\n")
    _write(root, "metrics/__init__.py", "from .pixel import mae\nfrom ._utils import pair\n")
    _write(root, "metrics/_utils.py", "def pair():\n    pass\n")
    _write(root, "metrics/pixel.py", "from ._utils import pair\n\ndef mae():\n    return pair\n")
    _write(root, "report.py", "from .metrics._utils import pair\n" + "x = 1\n" * 900)
    return module_names(root)


def test_checker_finds_each_violation(fake):
    assert set(fake) == {
        "fakepkg", "fakepkg.stack", "fakepkg.units", "fakepkg.nn", "fakepkg.nn.engine", "fakepkg._private_mod",
        "fakepkg.metrics", "fakepkg.metrics._utils", "fakepkg.metrics.pixel", "fakepkg.report",
    }
    graph = import_graph(fake)
    assert graph["fakepkg.stack"] == {"fakepkg.units", "fakepkg.nn.engine"}
    assert cycles(graph) == [["fakepkg.stack", "fakepkg.units"]]
    assert core_violations(fake, core=("stack", "units")) == [("fakepkg.stack", "fakepkg.nn.engine", 8)]
    private = private_imports(fake)
    assert ("fakepkg.stack", "fakepkg.units", "_helper", 3) in private
    # a private module used inside its own package is fine; from outside it is not
    assert ("fakepkg.report", "fakepkg.metrics._utils", None, 1) in private
    assert not any(a.startswith("fakepkg.metrics") for a, *_ in private)
    assert not any(a == "fakepkg.nn.engine" for a, *_ in private)  # fakepkg._private_mod belongs to fakepkg
    assert len(private) == 2
    assert long_modules(fake) == {"fakepkg.report": 901}
    assert reachable(graph, "fakepkg.units") == {"fakepkg.stack", "fakepkg.units", "fakepkg.nn.engine",
                                                 "fakepkg._private_mod"}


def test_checker_passes_a_clean_package(tmp_path):
    root = tmp_path / "cleanpkg"
    _write(root, "__init__.py", "from .a import f\n")
    _write(root, "a.py", "from .b import g\n\ndef f():\n    return g()\n")
    _write(root, "b.py", "import cleanpkg.c\n\ndef g():\n    return cleanpkg.c.h()\n")
    _write(root, "c.py", "def h():\n    return 1\n")
    modules = module_names(root)
    assert cycles(import_graph(modules)) == []
    assert private_imports(modules) == [] and core_violations(modules, core=("a", "b")) == []
    assert long_modules(modules) == {}
