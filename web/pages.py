"""The public verification page ``GET /v`` and its self-hosted assets.

The page is static: the token travels in the URL fragment (``/v#<token>``), which the
browser never sends, and the page's script posts it to ``POST /api/v1/verify``. Every
asset comes from this server, and the responses carry a strict Content-Security-Policy
(:mod:`web.headers`: no inline script or style, no other origin), so an attacker-written certificate field
can never become markup or script. The script builds the DOM with ``textContent`` only,
which ``require-trusted-types-for`` makes the browser enforce.
"""

from __future__ import annotations

from collections.abc import Mapping

from flask import Blueprint, render_template, request

blueprint = Blueprint(
    "pages",
    __name__,
    static_folder="static",
    static_url_path="/static/page",
    template_folder="templates",
)

LANGUAGES = ("zh-CN", "en")
DEFAULT_LANGUAGE = "zh-CN"

# Every word the page shows, in both languages; the script re-renders from the same table
# when the reader switches language, so the two can never drift apart.
STRINGS: Mapping[str, Mapping[str, str]] = {
    "zh-CN": {
        "title": "电子证照核验",
        "subtitle": "扫描证照二维码、粘贴证照码或上传证照 PDF，核验证照真伪与状态。",
        "switch_label": "English",
        "switch_lang": "en",
        "verdict_valid": "有效",
        "verdict_valid_note": "证照真实、已登记且在有效状态。",
        "verdict_invalid": "无效",
        "verdict_invalid_note": "请勿采信此证照。",
        "verdict_undetermined": "无法确定",
        "verdict_undetermined_note": "暂时无法确认此证照，请稍后重试，不应视为有效。",
        "reason": "原因",
        "code": "结果代码",
        "checking": "正在核验…",
        "network_error": "无法连接核验服务，未能完成核验。请检查网络后重试。",
        "server_error": "核验服务返回错误，未能完成核验。",
        "bad_answer": "核验服务的应答无法识别，未能完成核验。",
        "rate_limited": "核验请求过多，请稍后重试。",
        "pdf_unreadable": "无法读取此 PDF 文件。",
        "pdf_no_certificate": "此 PDF 中没有找到证照码。",
        "too_large": "文件过大，无法核验。",
        "retry": "重试",
        "mismatch_warning": "警告：PDF 上印刷的内容与签名数据不一致，请以下方签名数据为准。不一致的项目：",
        "invalid_data_note": "以下为证照码中的签名数据，证照已无效，仅供参考。",
        "undetermined_data_note": "以下为证照码中的签名数据，证照状态尚未确认。",
        "certificate": "证照信息",
        "certificate_type": "证照类型",
        "certificate_id": "证照编号",
        "holder_name": "持证主体",
        "id_uscc": "统一社会信用代码",
        "id_ric": "公民身份号码",
        "id_other": "证件号码",
        "valid_from": "有效期自",
        "valid_until": "有效期至",
        "no_end": "长期",
        "issued_at": "签发日期",
        "status": "状态",
        "issuer": "签发机构",
        "office_name": "机构名称",
        "office_code": "统一社会信用代码",
        "region": "签发地区",
        "checked_at": "核验时间",
        "status_from_issuer": "状态已向签发地区在线核实。",
        "status_from_list": "签发地区暂时无法连接：状态取自本地保存的、经签发地区签名的状态列表。",
        "source_note": "以上内容均取自证照码中经数字签名的数据，而非 PDF 或纸面上的文字。",
        "input_heading": "核验证照",
        "paste_label": "粘贴证照码或二维码内容",
        "paste_placeholder": "例如 …/v#eyJhbGciOi…",
        "paste_submit": "核验",
        "paste_empty": "请先粘贴证照码或二维码内容。",
        "upload_label": "或上传证照 PDF 文件",
        "upload_submit": "上传并核验",
        "upload_empty": "请先选择 PDF 文件。",
        "time_zone": "北京时间",
        "noscript": "核验需要启用浏览器的 JavaScript。",
    },
    "en": {
        "title": "Certificate verification",
        "subtitle": "Scan a certificate's QR code, paste its code or upload its PDF to check that it is genuine and in force.",
        "switch_label": "中文",
        "switch_lang": "zh-CN",
        "verdict_valid": "VALID",
        "verdict_valid_note": "The certificate is genuine, registered and in force.",
        "verdict_invalid": "INVALID",
        "verdict_invalid_note": "Do not accept this certificate.",
        "verdict_undetermined": "UNDETERMINED",
        "verdict_undetermined_note": "The certificate could not be checked right now. Try again later; do not treat it as valid.",
        "reason": "Reason",
        "code": "Result code",
        "checking": "Checking…",
        "network_error": "The verification service could not be reached, so nothing was checked. Check the connection and try again.",
        "server_error": "The verification service answered with an error, so nothing was checked.",
        "bad_answer": "The verification service's answer was not understood, so nothing was checked.",
        "rate_limited": "Too many verification requests; try again in a moment.",
        "pdf_unreadable": "This PDF file cannot be read.",
        "pdf_no_certificate": "No certificate code was found in this PDF.",
        "too_large": "The file is too large to verify.",
        "retry": "Try again",
        "mismatch_warning": "Warning: the text printed on the PDF differs from the signed data; rely on the signed data below. Differing items:",
        "invalid_data_note": "The signed data of this certificate, for reference only: the certificate is not valid.",
        "undetermined_data_note": "The signed data of this certificate; its status is not confirmed.",
        "certificate": "Certificate",
        "certificate_type": "Type",
        "certificate_id": "Certificate number",
        "holder_name": "Holder",
        "id_uscc": "Unified social credit code",
        "id_ric": "Resident ID number",
        "id_other": "ID number",
        "valid_from": "Valid from",
        "valid_until": "Valid until",
        "no_end": "No expiry",
        "issued_at": "Issued on",
        "status": "Status",
        "issuer": "Issuer",
        "office_name": "Office",
        "office_code": "Credit code",
        "region": "Region",
        "checked_at": "Checked at",
        "status_from_issuer": "Status confirmed online with the issuing region.",
        "status_from_list": "The issuing region could not be reached: the status comes from its signed status list held here.",
        "source_note": "Everything above comes from the certificate code's digitally signed data, never from text on a PDF or on paper.",
        "input_heading": "Verify a certificate",
        "paste_label": "Paste a certificate code or QR code text",
        "paste_placeholder": "e.g. …/v#eyJhbGciOi…",
        "paste_submit": "Verify",
        "paste_empty": "Paste a certificate code or QR code text first.",
        "upload_label": "or upload the certificate's PDF",
        "upload_submit": "Upload and verify",
        "upload_empty": "Choose a PDF file first.",
        "time_zone": "China Standard Time",
        "noscript": "Verification needs JavaScript to be enabled in the browser.",
    },
}


@blueprint.get("/v")
def verification_page() -> str:
    """The page; ``?lang=en`` renders it in English (nothing is remembered server-side)."""
    lang = request.args.get("lang", DEFAULT_LANGUAGE)
    if lang not in LANGUAGES:
        lang = DEFAULT_LANGUAGE
    return render_template("verify.html", lang=lang, text=STRINGS[lang], strings=STRINGS)
