"""The web console against the terminal, on a big registry: `python -m benchmarks.web_rows [--names N]`.

Standalone (not part of `python -m benchmarks`). It starts a name server and `lonja web` on free ports of
127.0.0.1, registers N names (10,000 by default) under leases, and prints the median of several runs of:

- listing every name, as a whole command: `lonja ls`, `curl` of the console's `/api/names`, `pyro5-nsc list`;
- `lonja web` from start to its first answer;
- a registration until it shows: as a server-sent event on `/api/changes/stream`, and as a row in an open
  registry page (headless chromium, when chromium and chromedriver are installed).
"""

from __future__ import annotations

import argparse
import json
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from .standalone import PYTHON, ROOT, environment, start, stop


def median_seconds(command: list[str], env: dict[str, str], runs: int) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                       timeout=300)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def web_start_seconds(ns: str, env: dict[str, str], runs: int) -> float:
    """From starting `lonja web` until its API has answered once."""
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        process, line = start(["web", "--ns", ns, "--port", "0"], env, "web console at ")
        try:
            url = line.split(" at ", 1)[1].split()[0]
            with urllib.request.urlopen(url + "api/whoami", timeout=30) as answer:
                answer.read()
            times.append(time.perf_counter() - began)
        finally:
            stop(process)
    return statistics.median(times)


def sse_latency(url: str, ns: str, runs: int) -> float:
    """Median seconds from a registration to its event on the change stream."""
    from lonja.clients import NameServerClient

    events: queue.Queue[tuple[str, float]] = queue.Queue()
    opened = threading.Event()

    def read() -> None:
        with urllib.request.urlopen(url + "api/changes/stream", timeout=600) as stream:
            opened.set()
            for raw in stream:
                line = raw.decode()
                if line.startswith("data: ") and '"name"' in line:
                    events.put((json.loads(line[6:])["name"], time.perf_counter()))

    threading.Thread(target=read, daemon=True).start()
    opened.wait(30)
    time.sleep(0.5)  # the feed's first long poll is in place
    times = []
    with NameServerClient(ns) as client:
        for run in range(runs):
            name = f"sse.probe{run}"
            began = time.perf_counter()
            client.register_instance(name, f"PYRO:probe{run}@127.0.0.1:1", ttl=600)
            while True:
                seen, when = events.get(timeout=30)
                if seen == name:
                    times.append(when - began)
                    break
    return statistics.median(times)


def page_latency(url: str, ns: str, runs: int) -> float | None:
    """Median seconds from a registration until its row is in an open registry page (None: no chromium)."""
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        return None
    sys.path.insert(0, str(ROOT / "tests"))
    from test_web_kit import chromium

    from lonja.clients import NameServerClient

    watch = """
        const name = arguments[0];
        window.__seen = window.__seen || {};
        new MutationObserver((records, observer) => {
          if (document.querySelector(`#names tr[data-name="${name}"]`)) {
            window.__seen[name] = Date.now(); observer.disconnect();
          }
        }).observe(document.getElementById("names"), {childList: true, subtree: true});
    """
    times = []
    with chromium() as driver, NameServerClient(ns) as client:
        driver.set_script_timeout(60)
        driver.get(url)
        deadline = time.monotonic() + 120
        while not driver.execute_script("return document.querySelectorAll('#names tr').length") \
                and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)
        for run in range(runs):
            name = f"a.page.probe{run}"  # sorts before the market names: among the rows drawn
            driver.execute_script(watch, name)
            began = time.time() * 1000
            client.register_instance(name, f"PYRO:page{run}@127.0.0.1:1", ttl=600)
            seen = None
            deadline = time.monotonic() + 60
            while seen is None and time.monotonic() < deadline:
                seen = driver.execute_script("return (window.__seen || {})[arguments[0]] || null", name)
                time.sleep(0.01)
            if seen is not None:
                times.append((seen - began) / 1000)
            time.sleep(2.0)  # past the page's debounced full reload, so each run starts quiet
    return statistics.median(times) if times else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", type=int, default=10_000, help="names to register (default 10,000)")
    parser.add_argument("--runs", type=int, default=5, help="runs per figure (default 5)")
    options = parser.parse_args(argv)

    from lonja.clients import NameServerClient

    with tempfile.TemporaryDirectory() as folder:
        env = environment(Path(folder))
        ns_process, line = start(["ns", "--host", "127.0.0.1", "--port", "0", "--storage", "memory"], env,
                                 "name server listening")
        ns = line.split(" on ", 1)[1].split()[0].split("@", 1)[1]
        processes = [ns_process]
        try:
            began = time.perf_counter()
            with NameServerClient(ns) as client:
                for index in range(options.names):
                    client.register_instance(f"market.stall{index:05d}", f"PYRO:stall{index}@127.0.0.1:1",
                                             {"lonja:bench", f"row:{index % 10}"}, ttl=3600)
            print(f"registered {options.names:,} names in {time.perf_counter() - began:.1f} s", flush=True)
            web_process, web_line = start(["web", "--ns", ns, "--port", "0"], env, "web console at ")
            processes.append(web_process)
            url = web_line.split(" at ", 1)[1].split()[0]
            host, port = ns.rsplit(":", 1)
            rows: list[tuple[str, Any]] = []

            def measured(label: str, seconds: float | None) -> None:
                rows.append((label, seconds))
                print(f"  {label}: {'n/a' if seconds is None else f'{seconds * 1000:,.0f} ms'}", flush=True)

            lonja_ls = [PYTHON, "-m", "lonja", "ls", "--ns", ns]
            measured("lonja ls (whole command)", median_seconds(lonja_ls, env, options.runs))
            curl = shutil.which("curl")
            api = [curl, "-sf", url + "api/names"] if curl else [PYTHON, "-c", "import sys, urllib.request; "
                                                                 "urllib.request.urlopen(sys.argv[1]).read()",
                                                                 url + "api/names"]
            measured(f"{'curl' if curl else 'python urllib'} /api/names (whole command)",
                     median_seconds(api, env, options.runs))
            nsc = Path(PYTHON).with_name("pyro5-nsc")
            measured("pyro5-nsc list (whole command)",
                     median_seconds([str(nsc), "-n", host, "-p", port, "list"], env, options.runs))
            measured("lonja web: start to first answer", web_start_seconds(ns, env, 3))
            measured("registration -> SSE event", sse_latency(url, ns, options.runs * 4))
            measured("registration -> row in an open page", page_latency(url, ns, options.runs))
        finally:
            for process in reversed(processes):
                stop(process)
    print(f"\n{'what (' + format(options.names, ',') + ' names)':<48} {'median':>10}")
    for label, seconds in rows:
        shown = "n/a (no chromium)" if seconds is None else f"{seconds * 1000:,.0f} ms"
        print(f"{label:<48} {shown:>10}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
