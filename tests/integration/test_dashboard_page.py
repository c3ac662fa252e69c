"""/dashboard as served: the page and its scripts come from the app under a strict CSP, with
no inline script, no external URL and no handler attributes; it stays out of the OpenAPI
document; the vendored Chart.js is the file its README names. (tests/browser drives it.)"""

from __future__ import annotations

import hashlib
import re
from html.parser import HTMLParser

import httpx
import pytest

from chatter.api.routers.dashboard import CONTENT_SECURITY_POLICY, STATIC_DIR


class PageScan(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.inline: list[str] = []
        self.handlers: list[str] = []
        self.ids: list[str] = []
        self._script_has_src = False
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script":
            self._in_script = True
            self._script_has_src = bool(values.get("src"))
        if tag == "style" or "style" in values:
            self.inline.append(f"<{tag} style>")
        for name, value in attrs:
            if name in ("src", "href") and value and not value.startswith(("#", "data:")):
                self.links.append(value)
            if name.startswith("on"):
                self.handlers.append(f"{tag} {name}")
            if name == "id" and value:
                self.ids.append(value)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append(data.strip()[:40])


async def test_the_page_and_every_asset_it_loads_come_from_the_app(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/dashboard")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "://" not in page.text, "the page names an external URL"
    scan = PageScan()
    scan.feed(page.text)
    assert scan.inline == [], "inline script or style: the CSP would block it"
    assert scan.handlers == [], "inline event handlers"
    assert len(scan.ids) == len(set(scan.ids)), "duplicate ids"
    assert {"dashboard/dashboard.js", "dashboard/chart.umd.js"} <= set(scan.links)
    for link in scan.links:
        asset = await client.get(f"/{link}")
        assert asset.status_code == 200, link
        assert asset.headers["content-security-policy"] == CONTENT_SECURITY_POLICY, link
        assert asset.headers["content-type"].startswith(("text/javascript", "text/css")), link
        assert asset.content, link


async def test_the_modules_import_only_each_other(client: httpx.AsyncClient) -> None:
    for path in STATIC_DIR.glob("*.js"):
        if path.name == "chart.umd.js":
            continue
        source = path.read_text()
        assert "://" not in source, f"{path.name} names an external URL"
        assert ".innerHTML" not in source, f"{path.name} writes HTML"
        for module in re.findall(r'from "\./([^"]+)"', source):
            response = await client.get(f"/dashboard/{module}")
            assert response.status_code == 200, f"{path.name} imports {module}"


@pytest.mark.parametrize(
    "name", ["nope.js", "README.md", "index.html", "..%2Fdashboard.py", "chart.js-LICENSE.md"]
)
async def test_only_the_shipped_scripts_and_styles_are_served(
    client: httpx.AsyncClient, name: str
) -> None:
    response = await client.get(f"/dashboard/{name}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_the_dashboard_is_not_in_the_api_document_and_other_routes_keep_their_headers(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/openapi.json")).json()
    assert not [path for path in document["paths"] if path.startswith("/dashboard")]
    health = await client.get("/healthz")
    # Every response gets the API's policy (api/security_headers.py); only the dashboard's
    # files carry the page's.
    assert health.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert "x-correlation-id" in health.headers
    assert "x-correlation-id" in (await client.get("/dashboard")).headers


def test_the_vendored_chart_js_is_the_file_its_readme_names() -> None:
    readme = (STATIC_DIR / "README.md").read_text()
    digest = hashlib.sha256((STATIC_DIR / "chart.umd.js").read_bytes()).hexdigest()
    assert f"`chart.umd.js` sha256 | `{digest}`" in readme
    version = re.search(r"Chart\.js v(\d+\.\d+\.\d+)", (STATIC_DIR / "chart.umd.js").read_text())
    assert version is not None
    assert f"Chart.js {version.group(1)}" in readme
    assert (STATIC_DIR / "chart.js-LICENSE.md").read_text().startswith("The MIT License")
