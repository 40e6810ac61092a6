"""The import contracts in pyproject.toml hold (imports point one way), and the DAG files stay thin.

`lint-imports` reads `[tool.importlinter]`: one layers contract over every vidthinker module (exhaustive,
so a new module must be given a layer), no cycle between siblings of any package, eval above trainer,
and the annotation library below both. A new upward import or cycle fails here, and in scripts/test.sh.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    assert lint.exists(), "import-linter is a dev dependency: run scripts/setup.sh"
    done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout, done.stdout[-4000:]


def test_dag_files_import_only_the_orchestration_layer():
    """DAG files are thin (Airflow's guidance): from our code they import vidthinker.orchestration only."""
    for dag_file in sorted((ROOT / "dags").glob("*.py")):
        tree = ast.parse(dag_file.read_text(), filename=str(dag_file))
        ours = []
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                ours.append(node.module)
            elif isinstance(node, ast.Import):
                ours.extend(alias.name for alias in node.names)
        ours = [m for m in ours if m.split(".")[0] in {"vidthinker", "trainer", "eval"}]
        assert ours, f"{dag_file.name} imports nothing from vidthinker"
        outside = [m for m in ours if not m.startswith("vidthinker.orchestration")]
        assert not outside, f"{dag_file.name} imports {outside}: DAG files use vidthinker.orchestration only"
