"""docs/tutorial.ipynb runs from top to bottom without an error and shows DataFrames.

The notebook is executed with nbclient in a Jupyter kernel whose working directory is a
temporary folder (it writes only into ``signsim-tutorial/`` there), so nothing lands in
the repository. A checking cell appended after the last cell asserts what the tutorial's
variables hold; the cells tagged ``dataframe`` must display a pandas DataFrame.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbclient
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "docs" / "tutorial.ipynb"

#: Seconds one cell may run (the slowest, the sweep or the evaluation, takes seconds).
CELL_TIMEOUT_S = 300

#: Run in the tutorial's kernel after its last cell: exact facts about its results.
CHECKS = '''
import pandas as pd
assert isinstance(runs, pd.DataFrame) and runs.id.tolist() == [1]
assert list(metrics.columns) == ["run_id", "arm", "seed", "t", "name", "value"]
assert daily.index.tolist() == [float(d) for d in range(11)], daily.index.tolist()
assert len(acts) == run.events and acts.t.is_monotonic_increasing
assert len(outcome.experiment.runs) == 6 and outcome.report.is_file()
assert sorted(final.index.get_level_values("arm").unique()) == ["baseline", "friction"]
assert final.index.get_level_values("seed").unique().tolist() == [0, 1, 2]
assert otc.n_interactions == 12000 and otc.scenario == "otc-head"
assert stats["stats"]["events"] == 12000
assert evaluation.index[0] == "model" and len(evaluation) > 1
assert evaluation[["exist_mrr", "sign_auc"]].notna().all().all()
fc = models.forecast_frame(forecast)
assert len(fc) == 20 and fc.n.sum() == forecast.n_rows
assert network.n_interactions == 35592 and twin.run_id == network.run_id
assert board.method.unique().tolist() == ["twin", "null"] and board.label.nunique() == 10
assert sum(twin.wins.values()) <= 10 and {m: len(r) for m, r in twin.runs.items()} == {"twin": 2, "null": 2}
listed = sim.list_runs(DB)
assert len(listed) == 1 + 6 + 2 + 2 * 2 and (listed.status == "complete").all()
print("tutorial checks passed")
'''


def _outputs_text(cell: dict) -> str:
    parts = []
    for out in cell.get("outputs", []):
        data = out.get("data", {})
        parts.append(data.get("text/html", "") + data.get("text/plain", "") + out.get("text", ""))
    return "\n".join(parts)


def test_the_stored_notebook_has_no_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    assert sum("dataframe" in c.metadata.get("tags", []) for c in code) >= 8


@pytest.mark.slow
def test_the_tutorial_runs_and_shows_dataframes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                ) -> None:
    # The kernel inherits this environment: it imports this checkout's sim and models
    # however signsim was installed, and never asks for a GPU.
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    monkeypatch.setenv("PYTHONPATH", path)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(CHECKS, id="test-checks"))
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, with the cell and traceback, on an error

    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors
    assert "tutorial checks passed" in _outputs_text(nb.cells[-1])
    for cell in nb.cells:
        if "dataframe" in cell.metadata.get("tags", []):
            results = [o for o in cell.outputs if o.output_type == "execute_result"]
            assert results, f"cell {cell.id} shows nothing"
            html = results[-1]["data"].get("text/html", "")
            assert 'class="dataframe' in html, f"cell {cell.id} does not show a DataFrame"
        if "figure" in cell.metadata.get("tags", []):
            assert any("image/png" in o.get("data", {}) for o in cell.outputs), cell.id
    assert (tmp_path / "signsim-tutorial" / "tutorial.db").is_file()
    assert not (ROOT / "docs" / "signsim-tutorial").exists()
