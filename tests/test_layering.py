"""The architecture's one-way data flow, checked on the source: the client never imports pandas."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "dreg_frames"
FORBIDDEN_IN_CLIENT = {
    "pandas",
    "numpy",
    "matplotlib",
    "ipywidgets",
    "dreg_frames.crawl",
    "dreg_frames.analysis",
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            prefix = "." * node.level
            found.add(prefix + node.module)
    return found


@pytest.mark.parametrize("path", sorted((PACKAGE / "client").glob("*.py")), ids=lambda p: p.name)
def test_client_layer_imports_no_analytics(path: Path) -> None:
    imported = _imports(path)
    bad = {
        name for name in imported if any(name == f or name.startswith(f + ".") for f in FORBIDDEN_IN_CLIENT)
    }
    # Relative imports from the client may only reach the client itself.
    bad |= {name for name in imported if name.startswith("..")}
    assert not bad, f"{path.name} imports {sorted(bad)}"


def test_the_client_alone_loads_no_analytics_library() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from dreg_frames import Registry, Repository, Manifest, LocalRegistry, push_image\n"
        "import dreg_frames.client\n"
        "heavy = sorted(m for m in ('pandas', 'matplotlib', 'ipywidgets', 'numpy') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
        "from dreg_frames import crawl, stale\n"
        "print('pandas' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    loaded, after = done.stdout.splitlines()
    assert loaded == "" and after == "True"
