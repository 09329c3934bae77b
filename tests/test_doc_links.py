"""Every relative link and anchor in README.md and docs/ resolves.

Markdown is rendered with the `markdown` library (fenced code included, so a link inside a code
block is no link), and anchors are computed from each heading's rendered text by GitHub's rule:
lower case; every character but letters, digits, spaces, '-' and '_' dropped; each space a '-';
a repeated slug gets '-1', '-2', ... in order.
"""
from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import markdown
import pytest

from tests.procs import REPO


def github_slug(text: str) -> str:
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


class _Page(HTMLParser):
    """Headings' text, explicit anchors (id=, name=) and link targets (href=, src=) of one page."""

    def __init__(self):
        super().__init__()
        self.headings: list[str] = []
        self.anchors: set[str] = set()
        self.targets: list[str] = []
        self._heading: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.anchors |= {attrs[k] for k in ("id", "name") if attrs.get(k)}
        self.targets += [attrs[k] for k in ("href", "src") if attrs.get(k)]
        if re.fullmatch(r"h[1-6]", tag):
            self._heading = []

    def handle_endtag(self, tag):
        if re.fullmatch(r"h[1-6]", tag) and self._heading is not None:
            self.headings.append("".join(self._heading))
            self._heading = None

    def handle_data(self, data):
        if self._heading is not None:
            self._heading.append(data)


def read_page(path: Path) -> _Page:
    page = _Page()
    page.feed(markdown.markdown(path.read_text(), extensions=["fenced_code", "tables"]))
    return page


def anchors_of(page: _Page) -> set[str]:
    """GitHub's anchors for the page's headings (repeats numbered), plus its explicit ones."""
    seen: dict[str, int] = {}
    out = set(page.anchors)
    for heading in page.headings:
        slug = github_slug(heading)
        out.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return out


def broken_links(path: Path, root: Path) -> list[str]:
    """'target: why' for each relative link of the markdown file at `path` that does not resolve."""
    broken = []
    for target in read_page(path).targets:
        parts = urlsplit(target)
        if parts.scheme or parts.netloc:
            continue  # external: not this test's business
        dest = (path.parent / unquote(parts.path)).resolve() if parts.path else path
        if not dest.is_relative_to(root.resolve()):
            broken.append(f"{target}: leaves the repository")
        elif not dest.exists():
            broken.append(f"{target}: no such file")
        elif parts.fragment and dest.suffix == ".md" and unquote(parts.fragment) not in anchors_of(read_page(dest)):
            broken.append(f"{target}: no heading with anchor #{parts.fragment} in {dest.relative_to(root)}")
    return broken


DOCS = sorted([REPO / "README.md", *(REPO / "docs").rglob("*.md")])


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(REPO)) for d in DOCS])
def test_relative_links_and_anchors_resolve(doc):
    assert broken_links(doc, REPO) == []


@pytest.mark.parametrize("heading, slug", [
    ("Hello World", "hello-world"),
    ("1 GPU / N GPUs", "1-gpu--n-gpus"),          # the slash goes, both spaces stay
    ("Sweeps & statistics", "sweeps--statistics"),
    ("python -m bench.train", "python--m-benchtrain"),
    ("What a run leaves (on disk)", "what-a-run-leaves-on-disk"),
    ("per_rank_batch", "per_rank_batch"),
    ("γ and β", "γ-and-β"),                        # letters outside ASCII stay
])
def test_github_slug(heading, slug):
    assert github_slug(heading) == slug


def test_links_are_checked(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# Title\n\n## Same\n\n## Same\n\n## `code` *and* words\n")
    (tmp_path / "README.md").write_text(
        "# R\n\n[ok](docs/a.md#title) [two](docs/a.md#same-1) [code](docs/a.md#code-and-words) "
        "[self](#r) [web](https://example.com/x#y)\n\n"
        "[gone](docs/b.md) [bad](docs/a.md#nothing) [out](../x.md) ![img](docs/p.png)\n\n"
        "```\n[in code](nowhere.md)\n```\n")
    assert broken_links(tmp_path / "README.md", tmp_path) == [
        "docs/b.md: no such file", "docs/a.md#nothing: no heading with anchor #nothing in docs/a.md",
        "../x.md: leaves the repository", "docs/p.png: no such file"]
