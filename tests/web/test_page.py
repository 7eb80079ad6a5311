"""``GET /v``, the public verification page, as the server sends it: headers, markup, assets.

What the page does in a browser is tested in ``test_browser.py``; here the point is what
a browser is told to allow: a strict Content-Security-Policy on the page and its assets,
nothing loaded from another site, no inline script or style, and both languages.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from web.pages import STRINGS

CSP_DIRECTIVES = {
    "default-src": {"'none'"},
    "script-src": {"'self'"},
    "style-src": {"'self'"},
    "img-src": {"'self'", "data:"},
    "connect-src": {"'self'"},
    "form-action": {"'self'"},
    "base-uri": {"'none'"},
    "frame-ancestors": {"'none'"},
    "require-trusted-types-for": {"'script'"},
}
UNSAFE_SOURCES = ("'unsafe-inline'", "'unsafe-eval'", "'unsafe-hashes'", "'strict-dynamic'", "*", "http:", "https:")
# Attributes through which markup makes the browser fetch or submit something.
URL_ATTRIBUTES = {"src", "href", "action", "formaction", "srcset", "poster", "data", "manifest", "background"}
JAVASCRIPT_TYPES = {"text/javascript", "application/javascript"}


@dataclass
class Markup(HTMLParser):
    """The parts of a page that matter to its security policy."""

    urls: list[tuple[str, str, str]] = field(default_factory=list)
    scripts: list[dict[str, str | None]] = field(default_factory=list)
    style_elements: int = 0
    style_attributes: list[str] = field(default_factory=list)
    handlers: list[str] = field(default_factory=list)
    stylesheets: list[str] = field(default_factory=list)
    html_lang: str | None = None
    lang_switch: dict[str, str | None] = field(default_factory=dict)
    text: dict[str, str] = field(default_factory=dict)
    viewport: str | None = None
    _open: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(convert_charrefs=True)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        for name, value in attrs:
            if name in URL_ATTRIBUTES and value is not None:
                self.urls.append((tag, name, value))
            if name == "style":
                self.style_attributes.append(tag)
            if name.startswith("on"):
                self.handlers.append(f"{tag}[{name}]")
        if tag == "html":
            self.html_lang = attributes.get("lang")
        if tag == "script":
            self.scripts.append(attributes)
        if tag == "style":
            self.style_elements += 1
        if tag == "link" and attributes.get("rel") == "stylesheet" and attributes.get("href"):
            self.stylesheets.append(attributes["href"] or "")
        if tag == "meta" and attributes.get("name") == "viewport":
            self.viewport = attributes.get("content")
        if attributes.get("id") == "lang-switch":
            self.lang_switch = attributes
        self._open.append(attributes.get("data-text") or "")

    def handle_endtag(self, tag: str) -> None:
        if self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        if self._open and self._open[-1] and data.strip():
            self.text.setdefault(self._open[-1], data.strip())


def parse(response: TestResponse) -> Markup:
    markup = Markup()
    markup.feed(response.get_data(as_text=True))
    markup.close()
    return markup


def csp(response: TestResponse) -> dict[str, set[str]]:
    policy = response.headers["Content-Security-Policy"]
    directives: dict[str, set[str]] = {}
    for part in policy.split(";"):
        name, *sources = part.split()
        assert name not in directives, f"{name} given twice in {policy!r}"
        directives[name] = set(sources)
    return directives


def assert_strict_headers(response: TestResponse) -> None:
    assert csp(response) == CSP_DIRECTIVES
    policy = response.headers["Content-Security-Policy"]
    assert not any(source in policy.split() for source in UNSAFE_SOURCES), policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"


@pytest.fixture
def page(client: FlaskClient) -> TestResponse:
    response = client.get("/v")
    assert response.status_code == 200
    return response


def asset_urls(markup: Markup) -> list[str]:
    return [url for tag, _, url in markup.urls if tag in {"script", "link", "img"}]


# ---------------------------------------------------------------- the page


def test_page_is_html_with_a_strict_content_security_policy(page: TestResponse) -> None:
    assert page.mimetype == "text/html"
    assert page.mimetype_params["charset"] == "utf-8"
    assert_strict_headers(page)
    assert page.headers["X-Frame-Options"] == "DENY"


def test_page_has_no_inline_script_style_or_handlers(page: TestResponse) -> None:
    markup = parse(page)

    executable = [s for s in markup.scripts if s.get("type") not in {"application/json"}]
    assert executable, "the page has no script"
    assert all(s.get("src") for s in executable), executable
    assert markup.style_elements == 0
    assert markup.style_attributes == []
    assert markup.handlers == []


def test_page_loads_nothing_from_another_site(page: TestResponse) -> None:
    markup = parse(page)
    html = page.get_data(as_text=True)

    assert "http://" not in html
    assert "https://" not in html
    for tag, attribute, url in markup.urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc, f"<{tag} {attribute}={url!r}> leaves the site"
    assert {urlsplit(url).path for url in asset_urls(markup)} >= {"/static/page/verify.js", "/static/page/verify.css"}


def test_page_works_on_a_phone_screen(page: TestResponse) -> None:
    markup = parse(page)

    assert markup.viewport is not None
    assert "width=device-width" in markup.viewport
    assert "user-scalable=no" not in markup.viewport


def test_page_needs_no_database_and_no_token(client: FlaskClient) -> None:
    # The region is not even initialised: the page is static, the token stays in the fragment.
    response = client.get("/v")

    assert response.status_code == 200
    assert 'id="paste-form"' in response.get_data(as_text=True)
    assert 'id="upload-input"' in response.get_data(as_text=True)


def test_forms_submit_nothing_without_the_script(page: TestResponse) -> None:
    # Without JavaScript a submitted form must not carry the token into a URL (and logs).
    html = page.get_data(as_text=True)
    controls = re.findall(r"<(?:textarea|input|select)\b[^>]*>", html)

    assert len(controls) == 2
    assert not any(re.search(r"\sname=", control) for control in controls), controls
    assert all('method="get"' in form for form in re.findall(r"<form\b[^>]*>", html))


@pytest.mark.parametrize(
    ("query", "lang", "title", "switch_to", "switch_label"),
    [
        pytest.param("", "zh-CN", "电子证照核验", "en", "English", id="default-chinese"),
        pytest.param("?lang=zh-CN", "zh-CN", "电子证照核验", "en", "English", id="chinese"),
        pytest.param("?lang=en", "en", "Certificate verification", "zh-CN", "中文", id="english"),
        pytest.param("?lang=fr", "zh-CN", "电子证照核验", "en", "English", id="unknown-falls-back"),
        pytest.param("?lang=%3Cscript%3E", "zh-CN", "电子证照核验", "en", "English", id="hostile-falls-back"),
    ],
)
def test_language_follows_the_query_and_offers_the_other(
    client: FlaskClient, query: str, lang: str, title: str, switch_to: str, switch_label: str
) -> None:
    response = client.get(f"/v{query}")
    markup = parse(response)

    assert response.status_code == 200
    assert markup.html_lang == lang
    assert markup.text["title"] == title
    assert markup.text["input_heading"] == STRINGS[lang]["input_heading"]
    assert markup.lang_switch["href"] == f"?lang={switch_to}"
    assert markup.lang_switch["lang"] == switch_to
    assert markup.text["switch_label"] == switch_label
    assert "<script>" not in response.get_data(as_text=True)


def test_page_carries_both_languages_for_the_script(page: TestResponse) -> None:
    html = page.get_data(as_text=True)
    block = re.search(r'<script type="application/json" id="page-strings">(.*?)</script>', html, re.S)

    assert block is not None
    assert json.loads(block.group(1)) == STRINGS
    assert set(STRINGS["zh-CN"]) == set(STRINGS["en"])
    assert STRINGS["zh-CN"]["verdict_valid"] == "有效"
    assert STRINGS["en"]["verdict_valid"] == "VALID"


# ---------------------------------------------------------------- the assets


@pytest.mark.parametrize(
    ("path", "mimetypes"),
    [
        pytest.param("/static/page/verify.js", JAVASCRIPT_TYPES, id="script"),
        pytest.param("/static/page/verify.css", {"text/css"}, id="stylesheet"),
        pytest.param("/static/page/icon.svg", {"image/svg+xml"}, id="icon"),
    ],
)
def test_assets_are_served_with_their_types_and_the_policy(client: FlaskClient, path: str, mimetypes: set[str]) -> None:
    response = client.get(path)

    assert response.status_code == 200
    assert response.mimetype in mimetypes
    assert_strict_headers(response)


def test_every_asset_the_page_references_is_served(client: FlaskClient, page: TestResponse) -> None:
    for url in asset_urls(parse(page)):
        response = client.get(urljoin("/v", url))
        assert response.status_code == 200, url
        assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_stylesheet_fetches_nothing(client: FlaskClient) -> None:
    # No web fonts, no images, no imports: system fonts only (a CJK web font is megabytes).
    stylesheet = client.get("/static/page/verify.css").get_data(as_text=True)

    assert "url(" not in stylesheet
    assert "@import" not in stylesheet
    assert "@font-face" not in stylesheet


@pytest.mark.parametrize(
    "asset",
    ["verify.js", "verify.css"],
)
def test_assets_name_no_other_site(client: FlaskClient, asset: str) -> None:
    body = client.get(f"/static/page/{asset}").get_data(as_text=True)

    assert "http://" not in body
    assert "https://" not in body
    assert "//" + "cdn" not in body


def test_script_never_builds_markup_from_strings(client: FlaskClient) -> None:
    # The answer holds attacker-written text when a token is forged: DOM via textContent only.
    script = client.get("/static/page/verify.js").get_data(as_text=True)

    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script, sink
    assert "textContent" in script


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/static/page/../pages.py", id="dot-dot"),
        pytest.param("/static/page/%2e%2e/pages.py", id="encoded-dot-dot"),
        pytest.param("/static/page/templates/verify.html", id="template"),
        pytest.param("/static/page/missing.js", id="missing"),
    ],
)
def test_static_serves_only_the_static_folder(client: FlaskClient, path: str) -> None:
    response = client.get(path)

    assert response.status_code == 404
    assert b"Blueprint(" not in response.data


def test_page_refuses_other_methods(client: FlaskClient) -> None:
    response = client.post("/v", data={"token": "x"})

    assert response.status_code == 405


def test_verify_answer_headers_are_not_weakened_by_the_page(client: FlaskClient) -> None:
    # The page's relaxed-for-assets policy applies to the page only; the API keeps its own.
    response = client.post("/api/v1/verify", json={"token": "not a token"})

    assert response.status_code == 200
    assert response.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
