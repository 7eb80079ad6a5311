"""A personal ID number is masked everywhere it is shown.

Certificates are issued to holders with canary resident ID numbers (and one is quoted in
a status reason); then every place a person or another system can see certificate data
is searched for the full number: API answers (issuance, lookup, status change,
verification), the CLI (``verify``, ``export-pdfs``), the PDF (its text and its bytes),
the token and QR text, the published log entries, the status API, the audit trail and
the status history. Signed tokens are decoded wherever they appear, since base64url would
hide a number from a plain search.

The full number is kept in one place only: the registry's ``certificate`` row (the issuing
office's record). DESIGN: "Responses carry only what a verifier needs (personal ID
numbers masked)"; docs/api.md: "always masked in responses", the issuing office's own
answers included (it already holds the number; an answer is a display).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from sqlalchemy import select

from registry.models import AuditRecord, Certificate, StatusChange
from tests.privacy.conftest import PrivacyRegistry, assert_no_full_id, canary_resident_id, masked

DL_HOLDER = canary_resident_id("310110", "19870521", "613")
PQ_HOLDER = canary_resident_id("310112", "19650930", "274")
QUOTED = canary_resident_id("310105", "19991224", "458")  # named in a status reason
CANARIES = [DL_HOLDER, PQ_HOLDER, QUOTED]
COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")


def _unb64url(segment: str) -> str:
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        return ""


def readable(text: str) -> str:
    """``text`` followed by the decoded header and payload of every compact JWS in it."""
    decoded = [_unb64url(part) for match in COMPACT_JWS.findall(text) for part in match.split(".")[:2]]
    return "\n".join([text, *decoded])


def pdf_text(data: bytes) -> str:
    document = pdfium.PdfDocument(data)
    try:
        pages = [document[i].get_textpage().get_text_range() for i in range(len(document))]
        metadata = json.dumps(document.get_metadata_dict(), ensure_ascii=False)
    finally:
        document.close()
    return "\n".join([*pages, metadata])


@pytest.fixture(scope="module")
def shown(privacy_registry: PrivacyRegistry, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Everything shown about the canary holders, by place, readable (tokens decoded)."""
    registry = privacy_registry
    client, auth = registry.client, registry.office.auth
    dl = registry.issue("DL", DL_HOLDER)
    pq = registry.issue("PQ", PQ_HOLDER)
    changed = registry.change_status(pq["id"], "SUSPENDED", f"持证人身份证 {QUOTED} 与档案不符")
    places: dict[str, str] = {
        "issuance answer": json.dumps(dl, ensure_ascii=False),
        "status change answer": json.dumps(changed, ensure_ascii=False),
        "certificate lookup": client.get(dl["links"]["self"], headers=auth).get_data(as_text=True),
        "verification answer": client.post("/api/v1/verify", json={"token": dl["token"]}).get_data(as_text=True),
        "verification of a suspended certificate": client.post(
            "/api/v1/verify", json={"qr_text": pq["qr_text"]}
        ).get_data(as_text=True),
        "status answer": client.get(f"/api/v1/status/{pq['id']}").get_data(as_text=True),
        "status list": client.get("/.well-known/ecert/status-list").get_data(as_text=True),
        "verification page": client.get("/v").get_data(as_text=True)
        + client.get("/static/page/verify.js").get_data(as_text=True),
    }
    size = client.get("/api/v1/log").json["tree_size"]
    entries = client.get(f"/api/v1/log/entries?start=0&end={size}").json["entries"]
    places["log entries"] = "\n".join(base64.b64decode(e).decode("utf-8") for e in entries)
    for name, issued in (("DL", dl), ("PQ", pq)):
        pdf = client.get(issued["links"]["pdf"], headers=auth).get_data()
        places[f"{name} PDF text"] = pdf_text(pdf)
        places[f"{name} PDF bytes"] = pdf.decode("latin-1")
    for mode in ((), ("--json",)):
        result = registry.runner.invoke(args=["verify", dl["qr_text"], *mode])
        places[f"CLI verify {' '.join(mode) or 'text'}"] = result.stdout + result.stderr
    out = tmp_path_factory.mktemp("export")
    exported = registry.runner.invoke(args=["export-pdfs", "--office", registry.office.code, "--out", str(out)])
    assert exported.exit_code == 0, exported.stderr
    places["CLI export-pdfs output"] = exported.stdout + exported.stderr
    places["exported PDFs"] = "\n".join(
        pdf_text(path.read_bytes()) + path.read_bytes().decode("latin-1") for path in sorted(Path(out).iterdir())
    )
    with registry.deployment.read_session() as session:
        places["audit trail"] = json.dumps(
            [[r.actor, r.action, r.subject_id, r.details] for r in session.scalars(select(AuditRecord))],
            ensure_ascii=False,
        )
        places["status history"] = "\n".join(c.reason for c in session.scalars(select(StatusChange)))
    places["token"] = dl["token"]
    places["QR text"] = pq["qr_text"]
    return {place: readable(text) for place, text in places.items()}


PLACES = [
    "issuance answer",
    "status change answer",
    "certificate lookup",
    "verification answer",
    "verification of a suspended certificate",
    "status answer",
    "status list",
    "verification page",
    "log entries",
    "DL PDF text",
    "DL PDF bytes",
    "PQ PDF text",
    "PQ PDF bytes",
    "CLI verify text",
    "CLI verify --json",
    "CLI export-pdfs output",
    "exported PDFs",
    "audit trail",
    "status history",
    "token",
    "QR text",
]
# Places that show the holder's ID number, masked (the rest show none of it).
SHOWS_MASKED = {
    "issuance answer": [DL_HOLDER],
    "certificate lookup": [DL_HOLDER],
    "status change answer": [PQ_HOLDER, QUOTED],
    "verification answer": [DL_HOLDER],
    "verification of a suspended certificate": [PQ_HOLDER],
    "log entries": [DL_HOLDER, PQ_HOLDER, QUOTED],
    "DL PDF text": [DL_HOLDER],
    "PQ PDF text": [PQ_HOLDER],
    "CLI verify text": [DL_HOLDER],
    "CLI verify --json": [DL_HOLDER],
    "exported PDFs": [DL_HOLDER, PQ_HOLDER],
    "audit trail": [QUOTED],
    "status history": [QUOTED],
    "token": [DL_HOLDER],
    "QR text": [PQ_HOLDER],
}


def test_every_place_is_searched(shown: dict[str, str]) -> None:
    assert set(shown) == set(PLACES)


@pytest.mark.parametrize("place", PLACES)
def test_no_place_shows_a_full_id_number(shown: dict[str, str], place: str) -> None:
    assert_no_full_id(shown[place], CANARIES, place)
    for number in SHOWS_MASKED.get(place, []):
        assert masked(number) in shown[place], f"{place} should show {masked(number)}"


def test_the_search_would_find_a_full_number_inside_a_token() -> None:
    payload = base64.urlsafe_b64encode(json.dumps({"h": {"i": DL_HOLDER}}).encode()).rstrip(b"=").decode()
    token = f"eyJhbGciOiJFZERTQSJ9.{payload}.c2lnbmF0dXJlMDAw"

    with pytest.raises(AssertionError, match="full ID number"):
        assert_no_full_id(readable(token), CANARIES, "a token")


def test_the_registry_keeps_the_full_number(privacy_registry: PrivacyRegistry, shown: dict[str, str]) -> None:
    """The issuing office's record holds the number whole: the canaries are real, and
    what the searches above prove is that every display masks it."""
    with privacy_registry.deployment.read_session() as session:
        numbers = set(session.scalars(select(Certificate.holder_id_number)))

    assert {DL_HOLDER, PQ_HOLDER} <= numbers
