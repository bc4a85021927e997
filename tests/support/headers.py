"""What every page must send: a strict Content-Security-Policy, and nothing inline it would block."""

from __future__ import annotations

import re
from html.parser import HTMLParser


class InlineFinder(HTMLParser):
    """Collects what a CSP without 'unsafe-inline' would block."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "script" and "src" not in names:
            self._in_script = True
        if tag == "style":
            self.problems.append("<style> element")
        if "style" in names:
            self.problems.append(f"style attribute on <{tag}>")
        self.problems += [f"{name} handler on <{tag}>" for name in names if name.startswith("on")]
        for name, value in attrs:
            if (
                name in ("href", "src", "action")
                and value
                and value.strip().lower().startswith("javascript:")
            ):
                self.problems.append(f"javascript: URL on <{tag}>")

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.problems.append("inline <script>")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False


def assert_strict(response) -> None:
    policy = response["Content-Security-Policy"]
    assert "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy
    assert re.search(r"default-src 'self'", policy)
    assert "frame-ancestors 'none'" in policy
    finder = InlineFinder()
    finder.feed(response.content.decode())
    assert finder.problems == [], finder.problems
