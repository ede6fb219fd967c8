"""Open a page in headless Chromium (Debian's ``chromium``): which of its images loaded, and a screenshot."""
from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(name)), None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--virtual-time-budget=10000"]
# Appended to a copy of the page: once everything has loaded, the <body> says how many images there are and
# which did not load.
CHECK = """<script>window.addEventListener("load", () => {
  const images = Array.from(document.images);
  document.body.setAttribute("data-images", images.length);
  document.body.setAttribute("data-broken", JSON.stringify(
    images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute("src"))));
});</script>"""


def _chromium(*args: str) -> subprocess.CompletedProcess:
    if CHROMIUM is None:
        pytest.skip("no chromium binary (Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=120, check=False)


def images_loaded(page: Path) -> tuple[int, list[str]]:
    """(number of <img> in ``page``, the src of each that did not load), as Chromium rendered it."""
    probe = page.with_name(f".probe_{page.name}")  # beside the page, so its relative links still resolve
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", CHECK + "</body>"), encoding="utf-8")
    try:
        res = _chromium("--dump-dom", probe.as_uri())
    finally:
        probe.unlink()
    count, broken = (re.search(rf'<body[^>]*{name}="([^"]*)"', res.stdout) for name in ("data-images", "data-broken"))
    assert count and broken, f"chromium gave no marked <body> (exit {res.returncode}): {res.stderr[-500:]}"
    return int(count.group(1)), json.loads(html.unescape(broken.group(1)))


def screenshot(page: Path, png: Path, width: int = 1200, height: int = 2400) -> Path:
    res = _chromium(f"--window-size={width},{height}", f"--screenshot={png}", page.as_uri())
    assert png.is_file(), f"no screenshot (exit {res.returncode}): {res.stderr[-500:]}"
    return png
