"""examples/quickstart.ipynb runs, offline, top to bottom, and paints its picture.

The code cells are executed in order in one namespace, as a kernel would (without IPython:
the notebook uses no magics and shows its results as the cells' last expressions)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import estilo

NOTEBOOK = Path(__file__).parents[1] / "examples" / "quickstart.ipynb"


def test_the_quickstart_is_a_valid_notebook() -> None:
    notebook = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    assert notebook["nbformat"] == 4 and notebook["nbformat_minor"] >= 5
    assert notebook["metadata"]["kernelspec"]["language"] == "python"
    ids = [cell["id"] for cell in notebook["cells"]]
    assert len(set(ids)) == len(ids)
    for cell in notebook["cells"]:
        assert cell["cell_type"] in ("markdown", "code") and isinstance(cell["source"], list)
        if cell["cell_type"] == "code":  # stored without outputs: nothing stale to review
            assert cell["outputs"] == [] and cell["execution_count"] is None


def test_the_quickstart_runs_and_paints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # the notebook saves quickstart.png beside itself
    notebook = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    namespace: dict[str, Any] = {"__name__": "__main__"}
    for number, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), f"quickstart cell {number}", "exec"), namespace)
    result = namespace["result"]
    assert isinstance(result, estilo.Stylized) and result.status == "completed"
    assert max(result.image.shape[-2:]) == namespace["SIZE"] <= 96
    assert result._repr_png_().startswith(b"\x89PNG")
    assert (tmp_path / "quickstart.png").stat().st_size > 1000
    assert namespace["again"] == result.config
    assert namespace["short"].status == "stopped" and len(namespace["short"].history) == 5
    bar = capsys.readouterr().err  # progress=True drew a bar (text, outside Jupyter)
    assert "it/s" in bar or "s/it" in bar, bar
