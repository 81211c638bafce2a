"""Dry-run output: each message as the exact `.eml` bytes SES would get, and an index.html to preview them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from jinja2 import Environment

from sender.models import Recipient
from sender.render import Rendered

INDEX = Environment(autoescape=True).from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Dry run: {{ blast_id }}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;margin-bottom:1.5rem}td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}
details{margin:.4rem 0;border:1px solid #ddd;border-radius:4px;padding:.4rem .8rem}
summary{cursor:pointer}iframe{width:100%;height:28rem;border:1px solid #eee;background:#fff}
pre{white-space:pre-wrap;background:#f7f7f7;padding:.6rem}
</style></head><body>
<h1>Dry run: {{ blast_id }}</h1>
<p>Nothing was sent. Each message below is the exact MIME file that would go to SES.</p>
<table><tr>{% for k, v in counts.items() %}<th>{{ k }}</th>{% endfor %}</tr>
<tr>{% for k, v in counts.items() %}<td>{{ v }}</td>{% endfor %}</tr></table>
{% for w in warnings %}<p><strong>Warning:</strong> {{ w }}</p>{% endfor %}
{% if skipped %}<h2>Not rendered</h2>
<table><tr><th>entry</th><th>status</th><th>reason</th></tr>
{% for r in skipped %}<tr><td>{{ r.email or "(no address)" }}</td><td>{{ r.status }}</td><td>{{ r.reason }}</td></tr>{% endfor %}
</table>{% endif %}
<h2>Messages</h2>
{% for m in messages %}
<details{% if loop.first %} open{% endif %}><summary>{{ m.position }}. {{ m.to }} &mdash; {{ m.subject }} (<a href="{{ m.file }}">{{ m.file }}</a>)</summary>
{% if m.html is not none %}<iframe sandbox="" srcdoc="{{ m.html }}" title="HTML part for {{ m.to }}"></iframe>{% endif %}
<pre>{{ m.text }}</pre></details>
{% endfor %}
{% if more %}<p>... and {{ more }} more messages in this folder.</p>{% endif %}
</body></html>
"""
)
PREVIEW_LIMIT = 200  # messages previewed inline in index.html; every .eml is written regardless


def _safe(email: str) -> str:
    return re.sub(r"[^A-Za-z0-9@._-]", "_", email)[:80]


class PreviewWriter:
    def __init__(self, out_dir: Path, blast_id: str) -> None:
        self.out_dir = Path(out_dir)
        self.blast_id = blast_id
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.written = 0
        self._previews: list[dict[str, Any]] = []

    def write(self, recipient: Recipient, raw: bytes, rendered: Rendered) -> None:
        name = f"{recipient.position:06d}-{_safe(recipient.email)}.eml"
        (self.out_dir / name).write_bytes(raw)
        self.written += 1
        if len(self._previews) < PREVIEW_LIMIT:
            self._previews.append(
                {
                    "position": recipient.position,
                    "to": recipient.email,
                    "subject": rendered.subject,
                    "file": name,
                    "text": rendered.text,
                    "html": rendered.html,
                }
            )

    def finish(self, response: dict[str, Any]) -> None:
        html = INDEX.render(
            blast_id=self.blast_id,
            counts=response.get("counts", {}),
            warnings=response.get("warnings", []),
            skipped=[r for r in response.get("records", []) if r.get("status") != "dry_run"][:PREVIEW_LIMIT],
            messages=self._previews,
            more=max(0, self.written - len(self._previews)),
        )
        (self.out_dir / "index.html").write_text(html, encoding="utf-8")
