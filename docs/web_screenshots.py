"""Remake the README's pictures of the web console: `python docs/web_screenshots.py`.

Starts `lonja up` (name server, echo, console) on free ports of 127.0.0.1, registers about 50 names like a
small market's, and saves docs/web-registry.png and docs/web-service.png from headless chromium.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT / "tests"))

TEAMS = {"fish": ["hake", "tuna", "sardine", "cod", "octopus", "mussels"],
         "fruit": ["oranges", "lemons", "figs", "melons", "grapes", "quince"],
         "bakery": ["bread", "pastries", "empanadas"],
         "ledger": ["invoices", "payments", "refunds", "audit"],
         "stock": ["cold-room", "dry-store", "crates", "ice"]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> int:
    from selenium.webdriver.common.by import By
    from test_web_kit import chromium

    from lonja.clients import NameServerClient

    with tempfile.TemporaryDirectory() as folder:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYRO_", "LONJA_"))}
        env.update(LONJA_DATA_DIR=folder, PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT))
        ns_port, web_port = free_port(), free_port()
        up = subprocess.Popen([sys.executable, "-m", "lonja", "up", "--port", str(ns_port), "--storage", "memory",
                               "--web-port", str(web_port)], env=env, stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
        try:
            assert up.stdout is not None
            for line in up.stdout:
                if "press Ctrl-C" in line:
                    break
            ns = f"127.0.0.1:{ns_port}"
            with NameServerClient(ns) as client:
                count = 0
                for team, stalls in TEAMS.items():
                    for stall in stalls:
                        for hall in ("north", "south"):
                            count += 1
                            uri = f"PYRO:{stall}@127.0.0.1:{40000 + count}"
                            client.register_instance(f"{team}.{stall}.{hall}", uri, {f"team:{team}", f"hall:{hall}"},
                                                     ttl=600)
                client.register("legacy.scales", f"PYRO:scales@127.0.0.1:{free_port()}", {"team:stock"})
            url = f"http://127.0.0.1:{web_port}/"
            with chromium(1100, 760) as driver:
                driver.get(url)
                time.sleep(3)
                driver.save_screenshot(str(DOCS / "web-registry.png"))
                driver.get(url + "#/service/echo")
                time.sleep(2)
                box = driver.find_element(By.CSS_SELECTOR, '.method[data-method="count"]')
                box.find_element(By.NAME, "args").send_keys("4 delay=0.1")
                box.find_element(By.CSS_SELECTOR, "button").click()
                time.sleep(1.5)
                box = driver.find_element(By.CSS_SELECTOR, '.method[data-method="fail"]')
                box.find_element(By.NAME, "args").send_keys("'out of stock'")
                box.find_element(By.CSS_SELECTOR, "button").click()
                time.sleep(1.5)
                driver.set_window_size(1100, 1150)
                driver.execute_script("window.scrollTo(0, 0)")
                time.sleep(0.5)
                driver.save_screenshot(str(DOCS / "web-service.png"))
        finally:
            up.terminate()
            up.wait(15)
    for name in ("web-registry.png", "web-service.png"):
        print(f"{DOCS / name}: {(DOCS / name).stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
