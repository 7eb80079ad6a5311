"""The verification page in a real browser: Debian's Chromium, headless, on a phone-sized
window, against a real deployment served by gunicorn.

Nothing is downloaded: selenium is given the system chromedriver and Chromium, so
Selenium Manager never runs (and ``SE_OFFLINE`` forbids it anyway). Without Chromium the
tests skip, unless ``ECERT_REQUIRE_BROWSER=1`` (CI), where they fail.
"""

from __future__ import annotations

import os
import struct
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from registry.demo import sample_request
from tests.e2e.live import HTTP_TIMEOUT, LiveDeployment, Server, free_port, http
from tests.verify.conftest import decode_parts, with_signature

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PHONE = (390, 844)
WAIT = 15

REGION_CODE = "310000"
OFFICE_CODE = "11310000002418960M"
DL_HOLDER_ID = "310115198506123526"  # the DL sample holder's full resident ID number
DL_HOLDER_ID_MASKED = "3101**********3526"


def require_browser_or_skip(reason: str) -> None:
    if os.environ.get("ECERT_REQUIRE_BROWSER") == "1":
        pytest.fail(f"ECERT_REQUIRE_BROWSER=1: {reason}")
    pytest.skip(reason)


# ---------------------------------------------------------------- the deployment


@dataclass(frozen=True)
class Site:
    live: LiveDeployment
    server: Server
    api_token: str

    @property
    def url(self) -> str:
        return self.server.url

    def issue(self, body: dict[str, Any] | None = None) -> dict[str, Any]:
        answer = http("POST", f"{self.url}/api/v1/certificates", body or sample_request("DL"), self.api_token)
        assert answer.status == 201, answer.body
        return answer.body  # type: ignore[no-any-return]

    def change_status(self, certificate_id: str, status: str) -> None:
        url = f"{self.url}/api/v1/certificates/{certificate_id}/status"
        answer = http("POST", url, {"status": status, "reason": "browser test"}, self.api_token)
        assert answer.status == 200, answer.body

    def pdf(self, certificate_id: str) -> bytes:
        request = urllib.request.Request(  # noqa: S310 (loopback only)
            f"{self.url}/api/v1/certificates/{certificate_id}/pdf",
            headers={"Authorization": f"Bearer {self.api_token}"},
        )
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:  # noqa: S310
            assert response.headers["Content-Type"] == "application/pdf"
            return response.read()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """One deployment for the module (SQLite: the page does not care), set up through its
    CLI, with gunicorn logging every request it receives."""
    folder = tmp_path_factory.mktemp("instance")
    live = LiveDeployment(folder=folder, database_url=f"sqlite:///{folder / 'ecert.db'}", port=free_port())
    try:
        assert live.flask("db", "upgrade").returncode == 0
        live.flask_json("region", "init", "--code", REGION_CODE, "--name", "上海市")
        office = live.flask_json(
            "office", "add", "--code", OFFICE_CODE, "--name", "上海市示范发证中心", "--types", "BL,DL"
        )
        server = live.start_server(GUNICORN_CMD_ARGS="--access-logfile -")
        yield Site(live, server, office["api_token"])
    finally:
        live.stop_all()


# ---------------------------------------------------------------- the browser


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    """Headless Chromium emulating a phone screen; no download, no profile, no sync."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.is_file()]
    if missing:
        require_browser_or_skip(
            f"browser tests need {' and '.join(missing)} (apt-get install chromium chromium-driver)"
        )
    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(argument)
    # A phone's screen: the page's viewport meta decides the layout width, as on a phone.
    metrics = {"width": PHONE[0], "height": PHONE[1], "pixelRatio": 1.0, "mobile": True, "touch": True}
    options.add_experimental_option("mobileEmulation", {"deviceMetrics": metrics})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SE_OFFLINE", "true")
        driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        driver.set_page_load_timeout(WAIT)
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def console(browser: webdriver.Chrome) -> Iterator[Callable[[], list[str]]]:
    """The browser console's errors since the test began (CSP violations, failed loads, script errors)."""
    browser.get_log("browser")
    yield lambda: [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def wait_for(browser: WebDriver, condition: Callable[[WebDriver], Any], what: str) -> Any:
    try:
        return WebDriverWait(browser, WAIT).until(condition)
    except TimeoutException:
        pytest.fail(f"timed out waiting for {what}; page text:\n{browser.find_element(By.TAG_NAME, 'body').text}")


def verdict(browser: WebDriver) -> WebElement:
    def shown(driver: WebDriver) -> WebElement | bool:
        found = driver.find_elements(By.ID, "verdict")
        return found[0] if found and found[0].is_displayed() else False

    return wait_for(browser, shown, "a verdict")  # type: ignore[no-any-return]


def open_page(browser: WebDriver, url: str) -> WebElement:
    """Load ``url`` afresh (a changed fragment alone would not reload) and wait for the verdict."""
    browser.get("about:blank")
    browser.get(url)
    return verdict(browser)


def text_of(browser: WebDriver, element_id: str) -> str:
    return browser.find_element(By.ID, element_id).text


def tampered_name(token: str, name: str) -> str:
    header, payload, signature = decode_parts(token)
    return with_signature(header, {**payload, "h": {**payload["h"], "n": name}}, signature)


# ---------------------------------------------------------------- verdicts from the fragment


def test_genuine_token_shows_valid_with_the_signed_data(
    browser: WebDriver, site: Site, console: Callable[[], list[str]]
) -> None:
    certificate = site.issue()

    panel = open_page(browser, f"{site.url}/v#{certificate['token']}")

    assert panel.get_attribute("data-verdict") == "VALID"
    assert "verdict--valid" in (panel.get_attribute("class") or "")
    assert text_of(browser, "verdict-word") == "有效"
    assert text_of(browser, "verdict-message") == "证照真实有效。"
    assert text_of(browser, "holder-name") == "王小红"
    assert text_of(browser, "holder-id") == DL_HOLDER_ID_MASKED
    assert text_of(browser, "certificate-id") == certificate["id"]
    assert text_of(browser, "office-name") == "上海市示范发证中心"
    assert text_of(browser, "office-code") == OFFICE_CODE
    assert text_of(browser, "region") == "上海市 (310000)"
    assert text_of(browser, "type-name") == "机动车驾驶证 (DL)"
    assert "准驾车型\nC1" in text_of(browser, "certificate")
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "zh-CN"
    assert DL_HOLDER_ID not in browser.page_source
    assert console() == []


def test_token_in_the_fragment_never_reaches_the_server(browser: WebDriver, site: Site) -> None:
    certificate = site.issue()

    open_page(browser, f"{site.url}/v#{certificate['token']}")

    log = site.server.log.read_text(errors="replace")
    assert '"GET /v HTTP/1.1" 200' in log
    assert '"POST /api/v1/verify HTTP/1.1" 200' in log
    assert certificate["token"].split(".")[1] not in log


@pytest.mark.parametrize(
    ("change", "code", "message"),
    [
        pytest.param("tamper-payload", "SIG_INVALID", "签名不符：证照被伪造或篡改。", id="forged-holder-name"),
        pytest.param("truncate", "MALFORMED", "证照码格式不正确。", id="truncated"),
        pytest.param("REVOKED", "REVOKED", "证照已被吊销。", id="revoked"),
        pytest.param("SUSPENDED", "SUSPENDED", "证照已被暂扣。", id="suspended"),
    ],
)
def test_bad_certificate_shows_invalid_with_the_reason(
    browser: WebDriver, site: Site, change: str, code: str, message: str
) -> None:
    certificate = site.issue()
    token = certificate["token"]
    if change == "tamper-payload":
        token = tampered_name(token, "李四")
    elif change == "truncate":
        token = token[: len(token) // 2]
    else:
        site.change_status(certificate["id"], change)

    panel = open_page(browser, f"{site.url}/v#{token}")

    assert panel.get_attribute("data-verdict") == "INVALID"
    assert "verdict--invalid" in (panel.get_attribute("class") or "")
    assert text_of(browser, "verdict-word") == "无效"
    assert text_of(browser, "verdict-message") == message
    assert text_of(browser, "verdict-code").endswith(code)
    assert "有效" not in text_of(browser, "verdict-word")
    assert "李四" not in browser.find_element(By.ID, "result").text


def test_revoked_certificate_data_is_marked_as_not_valid(browser: WebDriver, site: Site) -> None:
    certificate = site.issue()
    site.change_status(certificate["id"], "REVOKED")

    open_page(browser, f"{site.url}/v#{certificate['token']}")

    card = browser.find_element(By.ID, "certificate").text
    assert "证照已无效，仅供参考" in card
    assert text_of(browser, "status") == "吊销 (07)"


def test_signed_markup_is_shown_as_text(browser: WebDriver, site: Site, console: Callable[[], list[str]]) -> None:
    # A genuine certificate whose holder name an office's system took from a hostile form.
    hostile = '<img src="/x" onerror="document.title=1">公司'
    body = sample_request("BL")
    body["holder"] = {**body["holder"], "name": hostile}
    certificate = site.issue(body)

    open_page(browser, f"{site.url}/v#{certificate['token']}")

    assert text_of(browser, "holder-name") == hostile
    assert browser.find_elements(By.CSS_SELECTOR, "#result img") == []
    assert browser.title == "电子证照核验"
    assert console() == []


# ---------------------------------------------------------------- the forms


def test_empty_fragment_shows_the_forms_and_no_verdict(browser: WebDriver, site: Site) -> None:
    browser.get("about:blank")
    browser.get(f"{site.url}/v")

    wait_for(browser, lambda d: d.find_element(By.ID, "paste-input").is_displayed(), "the paste form")
    assert browser.find_elements(By.ID, "verdict") == []
    assert not browser.find_element(By.ID, "result").is_displayed()
    assert browser.find_element(By.ID, "upload-input").is_enabled()


@pytest.mark.parametrize("what", ["token", "qr_text", "token-with-line-breaks"])
def test_pasted_code_is_verified(browser: WebDriver, site: Site, what: str) -> None:
    certificate = site.issue()
    pasted = {
        "token": certificate["token"],
        "qr_text": certificate["qr_text"],
        "token-with-line-breaks": "\n".join(certificate["token"].split(".")).replace("\n", ".\n"),
    }[what]
    browser.get("about:blank")
    browser.get(f"{site.url}/v")

    browser.find_element(By.ID, "paste-input").send_keys(pasted)
    browser.find_element(By.ID, "paste-submit").click()

    assert verdict(browser).get_attribute("data-verdict") == "VALID"
    assert text_of(browser, "certificate-id") == certificate["id"]


def test_empty_paste_asks_for_a_code(browser: WebDriver, site: Site) -> None:
    browser.get("about:blank")
    browser.get(f"{site.url}/v")

    browser.find_element(By.ID, "paste-submit").click()

    assert text_of(browser, "paste-error") == "请先粘贴证照码或二维码内容。"
    assert browser.find_elements(By.ID, "verdict") == []


def test_uploaded_pdf_is_verified_from_its_signed_token(browser: WebDriver, site: Site, tmp_path: Path) -> None:
    certificate = site.issue()
    pdf = tmp_path / "certificate.pdf"
    pdf.write_bytes(site.pdf(certificate["id"]))
    browser.get("about:blank")
    browser.get(f"{site.url}/v")

    browser.find_element(By.ID, "upload-input").send_keys(str(pdf))

    assert verdict(browser).get_attribute("data-verdict") == "VALID"
    assert text_of(browser, "certificate-id") == certificate["id"]
    assert text_of(browser, "holder-id") == DL_HOLDER_ID_MASKED
    assert browser.find_elements(By.ID, "mismatch-warning") == []


def test_uploaded_file_that_is_no_pdf_is_not_called_invalid(browser: WebDriver, site: Site, tmp_path: Path) -> None:
    not_a_pdf = tmp_path / "certificate.pdf"
    not_a_pdf.write_bytes(b"this is not a PDF at all\n" * 10)
    browser.get("about:blank")
    browser.get(f"{site.url}/v")

    browser.find_element(By.ID, "upload-input").send_keys(str(not_a_pdf))

    panel = verdict(browser)
    assert panel.get_attribute("data-verdict") == "UNDETERMINED"
    assert text_of(browser, "verdict-message") == "无法读取此 PDF 文件。"
    assert text_of(browser, "verdict-code").endswith("PDF_UNREADABLE")


# ---------------------------------------------------------------- language, failure, phone


def test_english_switch_rerenders_the_verdict_and_keeps_the_token(browser: WebDriver, site: Site) -> None:
    certificate = site.issue()
    open_page(browser, f"{site.url}/v#{certificate['token']}")

    browser.find_element(By.ID, "lang-switch").click()

    wait_for(browser, lambda d: d.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en", "English")
    assert text_of(browser, "verdict-word") == "VALID"
    assert text_of(browser, "verdict-message") == "The certificate is genuine, registered and in force."
    labels = [dt.text for dt in browser.find_elements(By.CSS_SELECTOR, "#certificate dt")]
    assert {"Holder", "Resident ID number", "Certificate number", "Valid from"} <= set(labels)
    assert text_of(browser, "type-name") == "Motor vehicle driving licence (DL)"
    assert "Permitted vehicle class\nC1" in text_of(browser, "certificate")
    assert browser.title == "Certificate verification"
    assert browser.current_url == f"{site.url}/v?lang=en#{certificate['token']}"

    browser.find_element(By.ID, "lang-switch").click()

    wait_for(browser, lambda d: d.find_element(By.TAG_NAME, "html").get_attribute("lang") == "zh-CN", "Chinese")
    assert text_of(browser, "verdict-word") == "有效"


def test_english_link_opens_in_english(browser: WebDriver, site: Site) -> None:
    certificate = site.issue()
    site.change_status(certificate["id"], "REVOKED")

    open_page(browser, f"{site.url}/v?lang=en#{certificate['token']}")

    assert text_of(browser, "verdict-word") == "INVALID"
    assert text_of(browser, "verdict-message") == "The certificate was revoked."
    assert text_of(browser, "status") == "REVOKED (07)"


def test_unreachable_service_is_undetermined_not_invalid(browser: WebDriver, site: Site) -> None:
    certificate = site.issue()
    doomed = site.live.start_server(free_port())
    browser.get("about:blank")
    browser.get(f"{doomed.url}/v")
    wait_for(browser, lambda d: d.find_element(By.ID, "paste-input").is_displayed(), "the paste form")
    doomed.stop()

    browser.find_element(By.ID, "paste-input").send_keys(certificate["token"])
    browser.find_element(By.ID, "paste-submit").click()

    panel = verdict(browser)
    assert panel.get_attribute("data-verdict") == "UNDETERMINED"
    assert text_of(browser, "verdict-word") == "无法确定"
    assert "无法连接核验服务" in text_of(browser, "verdict-message")
    assert browser.find_element(By.ID, "retry").is_displayed()


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def test_phone_screen_has_no_sideways_scroll_and_large_targets(browser: WebDriver, site: Site, tmp_path: Path) -> None:
    certificate = site.issue(sample_request("BL"))
    open_page(browser, f"{site.url}/v#{certificate['token']}")

    screenshot = tmp_path / "phone-valid.png"
    assert browser.save_screenshot(str(screenshot))

    width, _ = png_size(screenshot)
    viewport = browser.execute_script("return window.innerWidth")
    assert width == viewport == PHONE[0]
    assert browser.execute_script("return document.documentElement.scrollWidth") <= viewport
    for element_id in ("lang-switch", "paste-submit", "upload-submit", "upload-input"):
        size = browser.find_element(By.ID, element_id).size
        assert size["height"] >= 44, (element_id, size)


# ---------------------------------------------------------------- another region's certificate


@pytest.fixture(scope="module")
def neighbour(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Zhejiang's deployment, which pinned Shanghai's root (the browser site) as a peer."""
    folder = tmp_path_factory.mktemp("neighbour")
    live = LiveDeployment(folder=folder, database_url=f"sqlite:///{folder / 'ecert.db'}", port=free_port())
    try:
        assert live.flask("db", "upgrade").returncode == 0
        live.flask_json("region", "init", "--code", "330000", "--name", "浙江省")
        fingerprint = site.live.flask_json("region", "show")["root_fingerprint"]
        live.flask_json("peer", "add", "--url", site.url, "--fingerprint", fingerprint)
        yield live.start_server()
    finally:
        live.stop_all()


def test_a_peer_regions_certificate_is_valid_on_this_regions_page(
    browser: WebDriver, site: Site, neighbour: Server, console: Callable[[], list[str]]
) -> None:
    """Zhejiang's page verifies a Shanghai certificate (跨区域互认): keys from Shanghai's
    pinned trust list, status asked of Shanghai online, and the page says so."""
    certificate = site.issue()

    panel = open_page(browser, f"{neighbour.url}/v#{certificate['token']}")

    assert panel.get_attribute("data-verdict") == "VALID"
    assert text_of(browser, "region") == "上海市 (310000)"
    assert text_of(browser, "office-code") == OFFICE_CODE
    notes = browser.find_elements(By.CLASS_NAME, "status-source")
    assert [note.text for note in notes] == ["状态已向签发地区在线核实。"]
    assert console() == []


def test_a_region_not_pinned_is_not_recognised_on_the_page(
    browser: WebDriver, site: Site, neighbour: Server, console: Callable[[], list[str]]
) -> None:
    """Shanghai has not pinned Zhejiang: Zhejiang's certificates are not recognised there."""
    del neighbour
    token = site.issue()["token"]
    header, payload, signature = decode_parts(token)
    foreign = with_signature(header, {**payload, "iss": "330000"}, signature)

    panel = open_page(browser, f"{site.url}/v#{foreign}")

    assert panel.get_attribute("data-verdict") == "INVALID"
    assert text_of(browser, "verdict-message") == "签发地区未被本地区互认。"
    assert browser.find_elements(By.CLASS_NAME, "status-source") == []
