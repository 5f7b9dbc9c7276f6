"""The editor page at `/`, driven in a real headless Chromium (Debian's `chromium`, through
Playwright's Python API: Playwright's own browser downloads cannot work here).

The screenshot lands in tests/artifacts/editor.png (git-ignored)."""

from __future__ import annotations

import os
import re
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from coderunner.redis_server import EmbeddedRedis
from runtimes.settings import ApiKey, Settings
from tests.app.serving import serving
from tests.client import Client

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
RUN_TIMEOUT_MS = 30_000  # a cold start under a loaded test machine, with margin


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip("Debian's chromium is not installed (`make system` installs it)")
    with sync_playwright() as playwright:
        # --no-sandbox: Chromium's own sandbox cannot start as root, which tests run as here.
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        yield browser
        browser.close()


class Editor:
    """The page as a person uses it, and what its console said."""

    def __init__(self, page: Page, base: str) -> None:
        self.page = page
        self.problems: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))
        page.goto(base + "/")
        expect(page.locator("#language option[value=python]")).to_have_count(1)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.problems.append(message.text)

    def write(self, code: str, language: str = "python") -> None:
        self.page.select_option("#language", language)
        self.page.fill("#code", code)

    def run(self) -> None:
        self.page.click("#run")

    def expect_status(self, status: str) -> None:
        expect(self.page.locator("#status")).to_have_attribute(
            "data-status", status, timeout=RUN_TIMEOUT_MS
        )

    def expect_output(self, text: str) -> None:
        expect(self.page.locator("#output")).to_contain_text(text, timeout=RUN_TIMEOUT_MS)

    def type_line(self, line: str) -> None:
        self.page.fill("#stdin", line)
        self.page.press("#stdin", "Enter")


@pytest.fixture
def editor(browser: Browser, server: Client) -> Iterator[Editor]:
    """A fresh browser context (its own localStorage) on the session's server."""
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    try:
        shown = Editor(context.new_page(), server.base)
        yield shown
        assert shown.problems == [], "the page logged errors (a CSP refusal shows here)"
    finally:
        context.close()


def test_the_page_is_served_with_a_strict_policy(server: Client) -> None:
    with urllib.request.urlopen(server.base + "/", timeout=10) as reply:
        body = reply.read().decode()
        headers = reply.headers
    assert reply.status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert headers["X-Content-Type-Options"] == "nosniff"
    policy = {d.split()[0]: d.split()[1:] for d in headers["Content-Security-Policy"].split("; ")}
    assert policy["default-src"] == ["'none'"]
    assert policy["connect-src"][0] == "'self'"
    host = server.base.removeprefix("http://")
    assert f"ws://{host}" in policy["connect-src"]
    assert all(s.startswith("'sha256-") for s in policy["script-src"] + policy["style-src"])
    assert "/ws/run" in body and "http://" not in body and "https://" not in body


def test_the_page_revalidates_instead_of_refetching(server: Client) -> None:
    with urllib.request.urlopen(server.base + "/", timeout=10) as reply:
        etag = reply.headers["ETag"]
        assert reply.headers["Cache-Control"] == "no-cache"
    request = urllib.request.Request(server.base + "/", headers={"If-None-Match": etag})
    with pytest.raises(urllib.error.HTTPError) as not_modified:
        urllib.request.urlopen(request, timeout=10)
    not_modified.value.close()
    assert not_modified.value.code == 304


def test_the_language_picker_lists_the_runtimes_with_a_sample_each(editor: Editor) -> None:
    options = editor.page.locator("#language option")
    languages = {"python", "javascript", "bash", "c", "cpp", "java", "go", "rust"}
    expect(options).to_have_count(len(languages))
    assert set(options.evaluate_all("(all) => all.map((o) => o.value)")) == languages
    editor.page.select_option("#language", "java")
    assert "public class Main" in editor.page.input_value("#code")


def test_tab_indents_and_shift_tab_outdents(editor: Editor) -> None:
    editor.write("if x:\npass")
    code = editor.page.locator("#code")
    code.press("End")  # the end of the last line
    code.press("Home")
    code.press("Tab")
    assert code.input_value() == "if x:\n    pass"
    code.press("Control+a")
    code.press("Tab")
    assert code.input_value() == "    if x:\n        pass"
    code.press("Shift+Tab")
    code.press("Shift+Tab")
    assert code.input_value() == "if x:\npass"
    expect(code).to_be_focused()


def test_a_hello_run_shows_its_output_status_and_timings(editor: Editor) -> None:
    editor.write('print("hello")')
    editor.run()
    editor.expect_status("completed")
    editor.expect_output("hello")
    expect(editor.page.locator("#exit-code")).to_have_text("exit 0")
    expect(editor.page.locator("#start")).to_have_text(re.compile(r"^(warm|cold) start$"))
    expect(editor.page.locator("#timings")).to_contain_text("total")
    expect(editor.page.locator("#wait")).to_contain_text("estimated wait")


def test_runs_reuse_one_socket(editor: Editor) -> None:
    sockets: list[str] = []
    editor.page.on("websocket", lambda ws: sockets.append(ws.url))
    for word in ("one", "two", "three"):
        editor.write(f"print({word!r})")
        editor.page.press("#code", "Control+Enter")
        editor.expect_status("completed")
        editor.expect_output(word)
    assert len(sockets) == 1 and sockets[0].endswith("/ws/run")


def test_input_typed_into_the_page_reaches_the_waiting_program(editor: Editor) -> None:
    editor.write('name = input("name? ")\nprint(f"hello, {name}")')
    editor.run()
    editor.expect_output("name? ")
    editor.expect_status("running")
    editor.type_line("Ada")
    editor.expect_status("completed")
    editor.expect_output("hello, Ada")


def test_stop_ends_an_infinite_loop_as_aborted(editor: Editor) -> None:
    editor.write("while True:\n    pass")
    editor.run()
    editor.expect_status("running")
    editor.page.click("#stop")
    editor.expect_status("aborted")
    expect(editor.page.locator("#run")).to_be_enabled()


@pytest.mark.parametrize("how", ["button", "ctrl-d"])
def test_end_of_input_reaches_the_program(editor: Editor, how: str) -> None:
    editor.write("import sys\nprint(len(sys.stdin.read()))")
    editor.run()
    editor.expect_status("running")
    editor.type_line("abc")
    if how == "button":
        editor.page.click("#eof")
    else:
        editor.page.press("#stdin", "Control+d")
    editor.expect_status("completed")
    editor.expect_output("4")


def test_terminal_mode_runs_under_a_tty(editor: Editor) -> None:
    editor.write("import sys\nprint('tty', sys.stdout.isatty())")
    editor.page.check("#tty")
    editor.run()
    editor.expect_status("completed")
    editor.expect_output("tty True")


def test_a_compile_error_shows_the_compiler_on_stderr(editor: Editor) -> None:
    editor.write("int main(void) { return nope; }", language="c")
    editor.run()
    editor.expect_status("compile_error")
    expect(editor.page.locator("#output .stderr")).to_contain_text("nope")


def test_a_screenshot_of_a_session(editor: Editor) -> None:
    """stdout and stderr told apart, typed input, the status line; saved for people to see."""
    editor.write(
        'import sys\nname = input("What is your name? ")\nprint(f"Hello, {name}!")\n'
        'print("this line went to stderr", file=sys.stderr)'
    )
    editor.run()
    editor.expect_output("What is your name? ")
    editor.type_line("Ada")
    editor.expect_status("completed")
    stderr = editor.page.locator("#output .stderr")
    expect(stderr).to_have_text("this line went to stderr\n")
    expect(stderr).to_have_css("color", "rgb(255, 107, 107)")
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "editor.png"
    editor.page.screenshot(path=str(shot))
    assert shot.read_bytes().startswith(b"\x89PNG")


def test_a_server_with_keys_asks_for_one_and_keeps_it(browser: Browser) -> None:
    """No worker is needed: the key is checked before anything is queued."""
    settings = Settings(api_keys={"s3cret": ApiKey("ada")})
    with EmbeddedRedis() as redis, serving(redis.url, settings) as app:
        context = browser.new_context()
        try:
            page = context.new_page()
            page.goto(app.base + "/")
            expect(page.locator("#key-panel")).to_be_visible()
            page.click("#run")
            expect(page.locator("#status")).to_have_attribute("data-status", "refused")
            expect(page.locator("#notice")).to_contain_text("API key")
            page.fill("#key", "s3cret")
            page.press("#key", "Enter")
            expect(page.locator("#key-panel")).to_be_hidden()
            expect(page.locator("#language option")).to_have_count(8)
            page.reload()
            expect(page.locator("#key-panel")).to_be_hidden()
            expect(page.locator("#language option")).to_have_count(8)
        finally:
            context.close()


def test_a_rate_limited_run_says_when_to_retry(browser: Browser) -> None:
    """Burst 1: the first run is queued (no worker here; Stop ends it), the second refused."""
    settings = Settings(rate_burst=1, rate_per_s=0.01)
    with EmbeddedRedis() as redis, serving(redis.url, settings) as app:
        context = browser.new_context()
        try:
            page = context.new_page()
            page.goto(app.base + "/")
            page.fill("#code", "print(1)")
            page.click("#run")
            expect(page.locator("#status")).to_have_attribute("data-status", "queued")
            page.click("#stop")
            expect(page.locator("#status")).to_have_attribute("data-status", "aborted")
            page.click("#run")
            expect(page.locator("#status")).to_have_attribute("data-status", "refused")
            expect(page.locator("#notice")).to_contain_text("Rate limited")
            expect(page.locator("#notice")).to_contain_text("try again in")
        finally:
            context.close()
