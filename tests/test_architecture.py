"""Rules of the package's structure, checked on its source (parsed with ``ast``, not imported)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "hepx"
MODULES = sorted(PACKAGE.rglob("*.py"))

#: The longest a function may be (from ``def`` to its last line, docstring included).
MAX_FUNCTION_LINES = 80


def _module_name(path: Path, package: Path) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _absolute(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    """The absolute module of ``from ... import``, relative imports resolved."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def private_imports(path: Path, package: Path = PACKAGE) -> list[str]:
    """``from hepx.x import _y``, ``import hepx.x._y``, ``from hepx.x._y import z`` in ``path``
    (a module of ``package``) where ``hepx.x`` is another module than ``path``."""
    module = _module_name(path, package)
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "hepx" and any(map(_is_private, parts)):
                    found.append(f"import {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, node, path.name == "__init__.py")
            if source.split(".")[0] != "hepx":
                continue
            if any(map(_is_private, source.split("."))):
                found.append(f"from {source} import ...")
            elif source != module or path.name == "__init__.py":
                # (a package importing from itself names a private submodule)
                found += [
                    f"from {source} import {a.name}" for a in node.names if _is_private(a.name)
                ]
    return found


def test_the_checker_sees_private_imports(tmp_path):
    """The checker itself, on a hand-written package."""
    package = tmp_path / "hepx"
    (package / "sub").mkdir(parents=True)
    probe = package / "sub" / "probe.py"
    probe.write_text(
        "from hepx.run import _period, TrainedRun\n"
        "from ..run import _dataset_record_from_config\n"
        "from .probe import _own\n"  # its own private name: allowed
        "import hepx.io.rootfile\n"
        "import hepx.io._old\n"
        "from hepx import __version__\n"
        "def f():\n"
        "    from hepx.x._private import y\n"
    )
    assert private_imports(probe, package) == [
        "from hepx.run import _period",
        "from hepx.run import _dataset_record_from_config",
        "import hepx.io._old",
        "from hepx.x._private import ...",
    ]
    init = package / "sub" / "__init__.py"
    init.write_text("from .probe import _helper\nfrom . import _hidden\n")
    assert private_imports(init, package) == [
        "from hepx.sub.probe import _helper",
        "from hepx.sub import _hidden",
    ]


def test_no_module_imports_a_private_name_of_another_module():
    assert len(MODULES) > 50
    offenders = {
        path.relative_to(PACKAGE.parent).as_posix(): found
        for path in MODULES
        if (found := private_imports(path))
    }
    assert offenders == {}


def _decorator_name(node: ast.expr) -> str:
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else ""


def _is_numba_kernel(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return any(_decorator_name(d) in ("njit", "jit") for d in node.decorator_list)


def long_functions(
    path: Path, limit: int = MAX_FUNCTION_LINES, package: Path = PACKAGE
) -> list[str]:
    """``module:line name (N lines)`` of the functions in ``path`` longer than ``limit``."""
    rel = path.relative_to(package.parent).as_posix()
    functions = [
        node
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not _is_numba_kernel(node)
    ]
    return [
        f"{rel}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in sorted(functions, key=lambda n: n.lineno)
        if node.end_lineno - node.lineno + 1 > limit
    ]


def test_the_checker_counts_lines_and_skips_numba_kernels(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(79))  # + the def line: 80 lines
    method = "\n".join("    " + line for line in body.splitlines())
    probe = tmp_path / "hepx" / "probe.py"
    probe.parent.mkdir()
    source = [
        "import numba",
        "from numba import njit",
        f"def ok():\n{body}",
        f"class A:\n    def long(self):\n{method}\n        return x0",
        f"@numba.njit(cache=True)\ndef kernel():\n{body}\n    return 0",
        f"@njit\ndef kernel2():\n{body}\n    return 0",
        f"@staticmethod\ndef decorated():\n{body}\n    return 0",
    ]
    probe.write_text("\n".join(source) + "\n")
    # lines: 2 imports, ok() 3-82, class 83, long() 84-164, two kernels of 82 lines with
    # their decorators, then the decorator of decorated() at 329
    assert long_functions(probe, package=probe.parent) == [
        "hepx/probe.py:84 long (81 lines)",
        "hepx/probe.py:330 decorated (81 lines)",
    ]


def test_no_function_is_longer_than_80_lines():
    """Except numba kernels (``@numba.njit``): one loop over the data, split only at a cost."""
    offenders = [f for path in MODULES for f in long_functions(path)]
    assert offenders == []
