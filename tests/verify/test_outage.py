"""An outage of the data the verifier needs is UNDETERMINED, never INVALID or VALID."""

from __future__ import annotations

from sqlalchemy.orm import Session

from registry.database import make_engine
from registry.demo import sample_request
from registry.issuance import issue_certificate
from registry.requests import parse_issuance_request
from verify.codes import Verdict
from verify.verifier import Verifier


def test_unreadable_registry_is_undetermined(session, keyring, clock, office, tmp_path):
    issued = issue_certificate(
        session, keyring, office.office, parse_issuance_request(sample_request("DL")), now=clock(), actor="test"
    )
    session.commit()
    token = issued.certificate.token
    assert Verifier(session, now=clock()).verify(token).verdict is Verdict.VALID

    # The same token checked against a database whose tables are gone (a failed
    # restore, a broken replica): every lookup from step 2 on raises.
    broken = make_engine(f"sqlite:///{tmp_path / 'empty.db'}", for_writing=False)
    with Session(broken) as empty:
        report = Verifier(empty, now=clock()).verify(token)
    broken.dispose()

    assert (report.verdict, report.code) == (Verdict.UNDETERMINED, "STATUS_UNAVAILABLE")
