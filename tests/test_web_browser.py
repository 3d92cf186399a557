"""The web console in a real browser (headless chromium with Selenium): what a person sees while names come
and go, while the name server goes away and comes back, and when they call a method from the page."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from test_web_kit import CHROMEDRIVER, CHROMIUM, chromium, start_web

from harness import Lonja, port_of
from lonja.clients import NameServerClient

pytestmark = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER) and not os.environ.get("CI"),
                                reason="needs chromium and chromedriver (installed when missing if run as root; "
                                       "under CI: a failure)")

WAIT = 30  # seconds: generous, for a busy two-core machine
URI = "PYRO:obj@127.0.0.1:1"
SHOP = "shopsecret1"
AUTH = {"LONJA_AUTH_ENABLED": "true", "LONJA_AUTH_SERVICE_TOKENS": f"shop:{SHOP}"}


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as driver:
        yield driver


def wait(driver: Any, condition, message: str = "") -> Any:
    """Wait for `condition(driver)`; a page redrawn meanwhile (stale or missing elements) is asked again."""
    return WebDriverWait(driver, WAIT, poll_frequency=0.1,
                         ignored_exceptions=(StaleElementReferenceException, NoSuchElementException)
                         ).until(lambda d: condition(d), message)


def row_text(driver: Any, name: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, f'#names tr[data-name="{name}"]').text


def rows(driver: Any) -> list[str]:
    return [row.get_attribute("data-name") for row in driver.find_elements(By.CSS_SELECTOR, "#names tr[data-name]")]


def summary(driver: Any) -> str:
    return driver.find_element(By.ID, "summary").text


def test_registry_follows_registrations_live(lonja: Lonja, ns: str, echo, browser):
    _, url = start_web(lonja, ns)
    browser.get(url + "/")
    wait(browser, lambda d: "echo" in rows(d), "echo listed")
    with NameServerClient(ns) as client:
        for name in ("shop.orders", "shop.stock", "bank.ledger"):
            client.register(name, URI, {"team:" + name.split(".")[0]})
        wait(browser, lambda d: {"shop.orders", "shop.stock", "bank.ledger"} <= set(rows(d)), "new names shown")
        wait(browser, lambda d: summary(d).startswith("5 names"), "counts updated")
        wait(browser, lambda d: "team:shop" in row_text(d, "shop.orders"), "metadata shown")

        box = browser.find_element(By.ID, "filter")
        box.send_keys("shop")
        wait(browser, lambda d: rows(d) == ["shop.orders", "shop.stock"], "filtered by text")
        box.clear()
        box.send_keys("*.ledger")
        wait(browser, lambda d: rows(d) == ["bank.ledger"], "filtered by glob")
        box.clear()
        box.send_keys(" ")
        box.clear()
        wait(browser, lambda d: len(rows(d)) == 5, "filter cleared")

        client.remove("shop.stock")
        wait(browser, lambda d: "shop.stock" not in rows(d), "removed name gone")
        wait(browser, lambda d: summary(d).startswith("4 names"), "counts updated after removal")
    assert browser.find_element(By.ID, "banner").is_displayed() is False


def test_banner_while_the_name_server_is_away(lonja: Lonja, browser):
    ns_process, ns = lonja.nameserver()
    _, url = start_web(lonja, ns)
    browser.get(url + "/")
    wait(browser, lambda d: "Pyro.NameServer" in rows(d), "listed")
    banner = browser.find_element(By.ID, "banner")
    assert not banner.is_displayed()
    ns_process.stop()
    wait(browser, lambda d: banner.is_displayed() and "does not answer" in banner.text, "banner shown")
    lonja.nameserver(port=port_of(ns))
    wait(browser, lambda d: not banner.is_displayed(), "banner gone once the name server is back")
    with NameServerClient(ns) as client:
        client.register("after.restart", URI)
    wait(browser, lambda d: "after.restart" in rows(d), "live again after the restart")


def method_box(driver: Any, method: str) -> Any:
    return driver.find_element(By.CSS_SELECTOR, f'#service .method[data-method="{method}"]')


def call_from_page(driver: Any, method: str, arguments: str) -> Any:
    box = method_box(driver, method)
    field = box.find_element(By.NAME, "args")
    field.clear()
    field.send_keys(arguments)
    box.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    return box.find_element(By.CSS_SELECTOR, "pre.result")


def test_service_page_describes_and_calls(lonja: Lonja, ns: str, echo, browser):
    _, url = start_web(lonja, ns)
    browser.get(url + "/")
    wait(browser, lambda d: "echo" in rows(d), "echo listed")
    browser.find_element(By.LINK_TEXT, "echo").click()
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, '#service .method[data-method="echo"]'), "methods shown")
    page = browser.find_element(By.ID, "service").text
    assert "lonja.services.builtin.echo.Echo" in page and "Returns what it is given" in page
    assert "slow(seconds: float = 1.0, value: Any = None) -> Any" in page
    assert "generator" in method_box(browser, "count").text
    assert "oneway" in method_box(browser, "notify").text
    assert "idempotent" in method_box(browser, "echo").text
    assert browser.find_element(By.CSS_SELECTOR, '#service li[data-attribute="notified"]').text.startswith("notified")
    assert "serving" in browser.find_element(By.ID, "instances").text

    result = call_from_page(browser, "echo", "{'a': [1, 2]}")
    wait(browser, lambda d: result.text == "{'a': [1, 2]}", "the result shown")

    streamed = call_from_page(browser, "count", "3 delay=0.3")
    wait(browser, lambda d: "(3 items)" in streamed.text, "streamed items shown")
    assert streamed.text.splitlines()[:3] == ["0", "1", "2"]

    failed = call_from_page(browser, "fail", "'out of stock'")
    wait(browser, lambda d: "out of stock" in failed.text, "the remote error shown")
    assert "remote lonja.services.builtin.echo.EchoError: out of stock" in failed.text
    assert "echo.py:" in failed.text and "in fail" in failed.text and "on PYRO:echo@127.0.0.1:" in failed.text

    bad = call_from_page(browser, "slow", "1 2 3")
    wait(browser, lambda d: "ArgumentMismatch" in bad.text, "a usage error shown")


def test_changes_page_lists_recent_and_new_changes(lonja: Lonja, ns: str, browser):
    _, url = start_web(lonja, ns)
    with NameServerClient(ns) as client:
        client.register("before.page", URI)
        browser.get(url + "/#/changes")
        wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, '#changes tr[data-name="before.page"]'), "history")
        client.register("while.open", URI)
        wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, '#changes tr[data-name="while.open"]'), "live")
    # read in one go inside the page: a probe's status row may redraw the table between two WebDriver calls
    rows_shown = browser.execute_script(
        "return [...document.querySelectorAll('#changes tr')].map(row => [row.dataset.name, row.innerText]);")
    added = [name for name, text in rows_shown if "added" in text]  # probes may add status rows in between
    assert added[:2] == ["while.open", "before.page"], rows_shown  # newest first


def test_a_call_needs_the_token_when_the_name_server_checks_them(lonja: Lonja, browser):
    lonja.env.update(AUTH)
    _, ns = lonja.nameserver()
    lonja.start("serve", "echo", "--ns", ns, env={"LONJA_AUTH_TOKEN": SHOP})
    _, url = start_web(lonja, ns)
    browser.get(url + "/#/service/echo")
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, '#service .method[data-method="echo"]'), "methods shown")
    refused = call_from_page(browser, "echo", "'hi'")
    wait(browser, lambda d: "TokenRequired" in refused.text, "refused without a token")
    assert refused.get_attribute("data-status") == "401"

    browser.find_element(By.ID, "token").send_keys(SHOP)
    browser.find_element(By.ID, "token-use").click()
    wait(browser, lambda d: "as shop (service)" in d.find_element(By.ID, "identity").text, "identity shown")
    assert SHOP not in browser.current_url
    assert browser.execute_script("return sessionStorage.getItem('lonja.token')") == SHOP
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, '#service .method[data-method="echo"]'), "methods shown")
    accepted = call_from_page(browser, "echo", "'hi'")
    wait(browser, lambda d: accepted.text == "'hi'", "the call works with the token")


def test_small_screen(lonja: Lonja, ns: str, echo, tmp_path):
    _, url = start_web(lonja, ns)
    with chromium(width=390, height=844, phone=True) as phone:
        phone.get(url + "/")
        wait(phone, lambda d: "echo" in rows(d), "echo listed")
        screen, page = phone.execute_script("return [window.innerWidth, document.documentElement.scrollWidth]")
        assert screen == 390 and page <= screen, f"the page is {page}px wide on a {screen}px screen"
        phone.get(url + "/#/service/echo")
        wait(phone, lambda d: d.find_elements(By.CSS_SELECTOR, '#service .method[data-method="echo"]'), "methods")
        page = phone.execute_script("return document.documentElement.scrollWidth")
        assert page <= screen, f"the service page is {page}px wide on a {screen}px screen"
        phone.save_screenshot(str(tmp_path / "phone.png"))
