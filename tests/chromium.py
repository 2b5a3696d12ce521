"""Open a page in headless Chromium and read what its pictures did (for the report tests).

Chromium's --dump-dom prints the DOM once the page has loaded and its virtual time budget has run
out; a probe script added to a copy of the page (written beside it, so relative paths stay the same)
records every <img>'s naturalWidth and whether each full-size link's target loads (the page's own
fullSize()), and puts the answer into the DOM as JSON.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
         "--disable-component-update", "--disable-sync", "--virtual-time-budget=10000", "--dump-dom"]
PROBE = """<script>
// the report's thumbnails load lazily: load each with the page (so the load event waits for it), as
// scrolling to it would; awaiting decode() after load instead let --dump-dom run before the probe finished
for (const img of document.images) img.loading = "eager";
window.addEventListener("load", async () => {
  const images = [...document.images].map(img => ({src: img.getAttribute("src"), width: img.naturalWidth}));
  const links = [...document.querySelectorAll("a[data-full]")];
  const full = await Promise.all(links.map(link => fullSize(link)));
  const out = document.createElement("pre");
  out.id = "jstyleid-probe";
  out.textContent = JSON.stringify({images, full});
  document.body.appendChild(out);
});
</script>"""


def chromium_or_skip() -> str:
    """The Chromium binary; skips the test where there is none, fails instead where CI requires it."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        reason = "no Chromium here (Debian: apt-get install chromium; .ci/run installs it)"
        if os.environ.get("JSTYLEID_REQUIRE_CHROMIUM"):
            pytest.fail(reason + ", but JSTYLEID_REQUIRE_CHROMIUM is set")
        pytest.skip(reason)
    return binary


def probe_page(page: Path, timeout: int = 120) -> dict:
    """{"images": [{"src", "width"}], "full": [bool per full-size link]} of `page` as Chromium shows it."""
    binary = chromium_or_skip()
    probe = page.with_name(f".probe-{page.name}")
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    try:
        with tempfile.TemporaryDirectory() as profile:
            result = subprocess.run(["timeout", "-k", "5", str(timeout), binary, *FLAGS, f"--user-data-dir={profile}",
                                     probe.resolve().as_uri()], capture_output=True, text=True)
    finally:
        probe.unlink()
    found = re.search(r'<pre id="jstyleid-probe">(.*?)</pre>', result.stdout, flags=re.S)
    assert found, f"Chromium printed no probe result (rc {result.returncode}):\n{result.stderr[-3000:]}"
    return json.loads(html.unescape(found[1]))
