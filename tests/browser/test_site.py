"""The static site (course_tools.site): built into a temporary folder, every internal link and image
resolves, the index is read from the notebooks, and in Chromium the pages show no console error
and render their maths (offline: file:// URLs, nothing fetched)."""

from __future__ import annotations

import base64
import html
import io
import json
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from browser_support import REPO, save_screenshot

from course_tools import site

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    pages = site.build_site(REPO / "notebooks", out)
    assert [p.name for p in pages] == ["index.html", *(f"{n.stem}.html" for n in NOTEBOOKS), "instructors.html",
                                       "faq.html"]
    return out


class Links(HTMLParser):
    """Every href and src of a page, and every id it defines."""

    def __init__(self):
        super().__init__()
        self.links: list[tuple[str, str]] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("href", "src") and value is not None:
                self.links.append((tag, value))
            elif name in ("id", "name") and value:
                self.ids.add(value)


def parse(page: Path) -> Links:
    links = Links()
    links.feed(page.read_text(encoding="utf-8"))
    return links


def test_every_internal_link_and_image_resolves(built):
    from PIL import Image

    pages = sorted(built.glob("*.html"))
    parsed = {page: parse(page) for page in pages}
    checked = images = 0
    for page, links in parsed.items():
        for tag, link in links.links:
            parts = urlsplit(link)
            if parts.scheme == "data":
                if link.startswith("data:image/png;base64,"):
                    Image.open(io.BytesIO(base64.b64decode(link.split(",", 1)[1]))).verify()
                    images += 1
                continue
            assert not parts.scheme and not parts.netloc, f"{page.name} fetches {link} from a network"
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            assert target.is_file(), f"{page.name}: {tag} {link} does not resolve"
            assert built.resolve() in target.parents, f"{page.name}: {link} leaves the site"
            if parts.fragment and target.suffix == ".html":
                ids = (parsed.get(target) or parse(target)).ids   # a browser tries the fragment as is, then decoded
                assert {parts.fragment, unquote(parts.fragment)} & ids, f"{page.name}: {link}"
            checked += 1
    figures = sum("image/png" in o.get("data", {}) for path in NOTEBOOKS
                  for c in json.loads(path.read_text())["cells"] for o in c.get("outputs", []))
    assert checked > 20 and images >= figures, (checked, images, figures)


def test_the_index_is_read_from_the_notebooks(built):
    index = (built / "index.html").read_text(encoding="utf-8")
    for path in NOTEBOOKS:
        entry = site.read_entry(path)
        cells = json.loads(path.read_text())["cells"]
        assert entry.title in "".join(cells[0]["source"]) and f'href="{path.stem}.html"' in index
        assert entry.objectives and entry.stated_time, entry
        assert entry.check_output, f"{path.name}: its check cells printed nothing"
        assert all(html.escape(line) in index for line in entry.check_output)
        student = json.loads((built / "student" / path.name).read_text())
        sources = ["".join(c["source"]) for c in student["cells"] if c["cell_type"] == "code"]
        assert not any("# BEGIN SOLUTION" in s for s in sources) and f'href="student/{path.name}"' in index
        assert (built / "notebooks" / path.name).read_bytes() == path.read_bytes()


def test_a_page_holds_its_panel_as_it_opens(built):
    with_panels = [p for p in NOTEBOOKS if site.PANEL_CALL.search(p.read_text())]
    assert len(with_panels) >= 9
    for path in with_panels:
        page = (built / f"{path.stem}.html").read_text(encoding="utf-8")
        assert "course-widget-snapshot" in page and "<select disabled" in page, path.name
        assert "application/vnd.jupyter.widget-state+json" in page            # the state, embedded
        assert "a widget whose state was not saved" not in page


@pytest.mark.browser
def test_the_pages_open_in_chromium_offline(built, browser, screenshots):
    mathjax = (built / "_static" / "mathjax" / "MathJax.js").exists()
    notebook = next(p for p in NOTEBOOKS if "$" in json.dumps(json.loads(p.read_text())["cells"][:3]))
    for name in ("index", notebook.stem):
        page = browser.new_page()
        errors, requests = [], []
        page.on("console", lambda m, errors=errors: m.type == "error" and errors.append(m.text))
        page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
        page.on("request", lambda r, requests=requests: requests.append(r.url))
        page.goto((built / f"{name}.html").as_uri())
        page.wait_for_load_state("load")
        if name == notebook.stem:
            if mathjax:      # typeset by the bundled MathJax
                page.locator(".MathJax").first.wait_for(timeout=60_000)
            else:            # no MathJax installed: the LaTeX stays readable as text
                assert "\\mathrm" in page.inner_text("body") or "$" in page.inner_text("body")
            assert page.locator(".course-widget-snapshot select").count() > 0
            page.locator(".course-widget-snapshot").first.scroll_into_view_if_needed()
        page.wait_for_timeout(500)
        save_screenshot(page, screenshots, f"site-{name}")
        page.close()
        assert not errors, errors
        assert all(url.startswith(("file:", "data:", "about:")) for url in requests), requests
