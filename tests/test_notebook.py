"""A Jupyter notebook that uses lonja (issue 10, §6), executed by nbclient in a real IPython kernel against a
real name server and service: `await proxy.method.aio(...)`, a plain call, a stream, `help()` of a remote
method, a callback (§2: an `async def` listener of the notebook's, run on the kernel's event loop), and a
remote error shown in a few readable lines (RemoteError's `_render_traceback_`)."""

from __future__ import annotations

import os

import pytest

from harness import ROOT

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

TESTS_PATH = os.pathsep.join([str(ROOT / "tests"), str(ROOT)])


@pytest.fixture
def shop(lonja, ns) -> str:
    lonja.start("serve", "shop_service:Shop", "sharing_service:News", "--ns", ns, env={"PYTHONPATH": TESTS_PATH})
    return ns


def test_a_notebook_calls_awaits_streams_and_shows_remote_errors(shop, tmp_path, monkeypatch):
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "jupyter"))
    cells = [
        f"from lonja.clients import connect\nshop = connect('shop', ns={shop!r})",
        "await shop.buy.aio('apple')",
        "shop.buy('apple')",
        "[item async for item in shop.items(3)] + list(shop.items(2))",
        "help(shop.buy)",
        "from lonja.clients import share\n"
        "class Progress:\n"
        "    def __init__(self):\n"
        "        self.steps = []\n"
        "    async def progress(self, step):\n"
        "        self.steps.append(step)\n"
        "        return step\n"
        "    def tick(self, step):\n"
        "        pass\n"
        f"news = connect('news', ns={shop!r})\n"
        "progress = Progress()",
        "(await news.work.aio(3, share(progress)), progress.steps)",
        "shop.buy('pear', 5)",
    ]
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    notebook.cells[-1].metadata["tags"] = ["raises-exception"]
    nbclient.NotebookClient(notebook, timeout=60, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()

    def results(index: int) -> list[dict]:
        return notebook.cells[index].outputs

    assert results(1)[0]["data"]["text/plain"] == "2"
    assert results(2)[0]["data"]["text/plain"] == "1"
    assert results(3)[0]["data"]["text/plain"] == "[0, 1, 2, 0, 1]"
    helped = "".join(output.get("text", "") for output in results(4))
    assert "shop.buy(sku: str, count: int = 1, *, note: str = '') -> int" in helped
    assert "Raises OutOfStock if there are fewer than `count`." in helped
    assert results(6)[0]["data"]["text/plain"] == "(3, [0, 1, 2])"
    error = results(7)[0]
    assert error["output_type"] == "error" and error["evalue"] == "pear: only 0 left"
    assert error["traceback"][0] == "shop_service.OutOfStock: pear: only 0 left"
    assert error["traceback"][1].startswith("  raised remotely at shop_service.py line ")
    assert len(error["traceback"]) <= 4 and not any("proxy.py" in line for line in error["traceback"])
