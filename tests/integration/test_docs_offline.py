"""/docs and /redoc work with no internet: every asset they reference is served by the app."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import httpx
import pytest


class AssetLinks(HTMLParser):
    """Every src/href of the page, and the URLs named in its inline scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_script = tag == "script"
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.links.append(value)

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)


@pytest.mark.parametrize(("page", "least"), [("/docs", 3), ("/redoc", 2)])
async def test_docs_pages_and_their_assets_come_from_the_app(
    client: httpx.AsyncClient, page: str, least: int
) -> None:
    response = await client.get(page)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "://" not in response.text, "the page names an external URL"
    parser = AssetLinks()
    parser.feed(response.text)
    assert len(parser.links) >= least, parser.links
    for link in parser.links:
        url = urljoin(f"http://chatter.test{page}", link)
        assert urlsplit(url).netloc == "chatter.test", link
        asset = await client.get(url)
        assert asset.status_code == 200, link
        assert asset.content, link
    # The page loads the document it renders from the app too.
    assert "'/openapi.json'" in response.text or '"/openapi.json"' in response.text
    assert (await client.get("/openapi.json")).status_code == 200


async def test_swagger_ui_does_not_call_the_online_validator(client: httpx.AsyncClient) -> None:
    parser = AssetLinks()
    parser.feed((await client.get("/docs")).text)
    assert any('"validatorUrl": null' in script for script in parser.scripts)


async def test_docs_assets_are_not_in_the_api_document(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert not [path for path in paths if path.startswith(("/docs", "/redoc"))]
