"""Fail when a module imports another module's private name (``from x import _name``).

A leading underscore means "stays inside its module"; a helper another module needs gets a public
name. ruff's PLC2701 skips imports within one package, which is where these happen, hence this check.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

FIRST_PARTY = ("reviewapp", "evaluations", "pipelines", "tests", "bench", "scripts")


def private_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom) or node.module == "__future__":
            continue
        if not node.level and (node.module or "").split(".")[0] not in FIRST_PARTY:
            continue
        for alias in node.names:
            if alias.name.startswith("_") and not alias.name.startswith("__"):
                found.append(f"{path}:{node.lineno}: imports private {alias.name} from {node.module}")
    return found


def main() -> int:
    listed = subprocess.run(["git", "ls-files", "*.py"], capture_output=True, text=True, check=True).stdout.split()
    problems = [p for name in listed if "/migrations/" not in name for p in private_imports(Path(name))]
    print("\n".join(problems) or "No private names imported across modules.")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
