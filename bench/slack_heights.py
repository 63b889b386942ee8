"""Heights of Slack messages as slackview draws them: per thread, per message, and where each
message's primary (green) button ends.

slackview (a dev tool outside this repository) writes each thread as an HTML page at the
thread pane's width (``thread-<ts>.html``, 480 px) and a phone's (``phone-<ts>.html``, 420 px).
One headless Chromium run loads every page in an iframe of its width and reports, for every
message (``.msg``), its height and the bottom of its primary button, measured from the
message's top: a decision "fits one phone screen" when both are within 750 px.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from html import unescape
from pathlib import Path
from typing import Any

WIDTHS = {"thread": 480, "phone": 420}
# Injected per page: each message's height, its first words, and where its primary button ends.
_PROBE = """
const out = document.createElement('pre'); out.id = 'out'; document.body.appendChild(out);
const pages = %s; const results = [];
let left = pages.length;
for (const [name, width] of pages) {
  const f = document.createElement('iframe');
  f.style.cssText = `width:${width}px;height:400px;border:0`;
  f.onload = () => {
    const d = f.contentDocument;
    const msgs = [...d.querySelectorAll('.msg')].map(m => {
      const r = m.getBoundingClientRect();
      const b = m.querySelector('button.bg-green-primary');
      const body = m.querySelector('.body');
      return {height: Math.round(r.height), primary: b ? Math.round(b.getBoundingClientRect().bottom - r.top) : null,
              text: (body ? body.innerText : m.innerText).replace(/\\s+/g, ' ').trim().slice(0, 80)};
    });
    results.push({page: name, width, height: Math.ceil(d.documentElement.scrollHeight), messages: msgs});
    if (--left === 0) out.textContent = JSON.stringify(results);
  };
  f.src = encodeURIComponent(name) + '.html';
  document.body.appendChild(f);
}
"""


def render(tool: Path, state: Path, out: Path) -> None:
    """slackview's PNGs and HTML pages of ``state`` into ``out``."""
    subprocess.run([sys.executable, str(tool), str(state), "--out", str(out)], check=True, capture_output=True, text=True)


def _chromium() -> str:
    exe = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)
    if exe is None:
        raise SystemExit("chromium not found: run slackview's setup.sh first")
    return exe


def heights(folder: Path, doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every thread page of ``folder`` (written by slackview from ``doc``) measured in Chromium."""
    roots = [
        m["ts"] for m in doc["messages"] if not m.get("thread_ts") and any(r.get("thread_ts") == m["ts"] for r in doc["messages"])
    ]
    safe = [re.sub(r"[^\w.-]", "_", ts) for ts in roots]
    pages = [(f"{kind}-{ts}", width) for ts in safe for kind, width in WIDTHS.items() if (folder / f"{kind}-{ts}.html").exists()]
    probe = folder / ".heights-probe.html"
    probe.write_text(f"<body><script>{_PROBE % json.dumps(pages)}</script></body>", encoding="utf-8")
    try:
        with tempfile.TemporaryDirectory(prefix="bench-chromium-") as profile:
            flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--allow-file-access-from-files"]
            dom = subprocess.run(
                [_chromium(), *flags, f"--user-data-dir={profile}", "--virtual-time-budget=15000", "--dump-dom", probe.as_uri()],
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            ).stdout
    finally:
        probe.unlink(missing_ok=True)
    found = re.search(r'<pre id="out">(.*?)</pre>', dom, re.S)
    return sorted(json.loads(unescape(found.group(1))) if found else [], key=lambda p: p["page"])
