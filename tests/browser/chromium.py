"""Headless Chromium for the browser tests: make sure Debian's ``chromium`` is there, load a page with a virtual time
budget (so scripts and rendering finish), and read what it left in the DOM and on stderr."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from tests.debian import apt_install, debian_binary

VIRTUAL_TIME_BUDGET_MS = 5000
TIMEOUT_SECONDS = 90
CONSOLE_PROBLEMS = ("Uncaught", "Refused to")
"""Uncaught errors and rejections, and content-security-policy refusals, as Chromium logs them on stderr."""
VOID_ELEMENTS = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
                           "track", "wbr"})


def _has_chinese_font() -> bool:
    listed = subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True, check=False)
    return bool(listed.stdout.strip())


def ensure_chromium() -> str:
    """The path of ``chromium``, installed with apt-get when missing and we are root; a failure (never a skip)
    when it cannot be had, since a skipped browser test proves nothing. Also a Chinese font when root, without
    which the Chinese screenshot shows empty boxes (the DOM checks do not depend on it)."""
    found = debian_binary("chromium", "chromium")
    if os.geteuid() == 0 and shutil.which("fc-list") and not _has_chinese_font():
        apt_install("fonts-noto-cjk")
    return found


@dataclass(frozen=True, slots=True)
class Run:
    stdout: str
    stderr: str

    def console_problems(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if any(mark in line for mark in CONSOLE_PROBLEMS)]


def run_chromium(chromium: str, url: str, *extra: str) -> Run:
    """One headless page load with ``extra`` flags (``--dump-dom``, ``--screenshot=...``), in a fresh profile."""
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        command = [
            chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
            f"--user-data-dir={profile}", "--no-first-run", "--lang=en-US",
            f"--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}", *extra, url,
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=TIMEOUT_SECONDS)
    if done.returncode != 0:
        raise AssertionError(f"chromium exited {done.returncode}: {done.stderr[-3000:]}")
    return Run(done.stdout, done.stderr)


def dump_dom(chromium: str, url: str) -> Run:
    return run_chromium(chromium, url, "--dump-dom")


def screenshot(chromium: str, url: str, path: Path, width: int = 1280, height: int = 2000) -> Run:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    return run_chromium(chromium, url, f"--screenshot={path}", f"--window-size={width},{height}",
                        "--hide-scrollbars")


@dataclass
class Element:
    """What a dumped DOM holds for one element: its attributes, and the tags and text inside it."""

    attributes: dict[str, str] = field(default_factory=dict)
    tags: Counter[str] = field(default_factory=Counter)
    text: list[str] = field(default_factory=list)


class _Finder(HTMLParser):
    def __init__(self, matches: dict[str, str]) -> None:
        super().__init__(convert_charrefs=True)
        self._matches = matches
        self._depth = 0
        self.found: Element | None = None

    def _is_match(self, tag: str, attributes: dict[str, str]) -> bool:
        return all((tag if name == "tag" else attributes.get(name)) == value for name, value in self._matches.items())

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if self._depth:
            assert self.found is not None
            self.found.tags[tag] += 1
            self._depth += tag not in VOID_ELEMENTS
        elif self.found is None and self._is_match(tag, attributes):
            self.found = Element(attributes)
            self._depth = tag not in VOID_ELEMENTS

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._depth:
            assert self.found is not None
            self.found.tags[tag] += 1
        elif self.found is None and self._is_match(tag, {name: value or "" for name, value in attrs}):
            self.found = Element({name: value or "" for name, value in attrs})

    def handle_endtag(self, tag: str) -> None:
        if self._depth and tag not in VOID_ELEMENTS:
            self._depth -= 1

    def handle_data(self, data: str) -> None:
        if self._depth and self.found is not None:
            self.found.text.append(data)


def find_element(dom: str, **matches: str) -> Element:
    """The first element whose tag (``tag=``) and attributes (``id=``...) match, with what it contains."""
    finder = _Finder(matches)
    finder.feed(dom)
    finder.close()
    if finder.found is None:
        raise AssertionError(f"no element {matches} in the dumped DOM")
    return finder.found
