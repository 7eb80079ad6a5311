"""How big and how fast the signed status list is, for a registry of N certificates.

    .venv/bin/python -m bench.status_list [--certificates 100000]

Rows are bulk-inserted (one real issued certificate copied N times with distinct ids and
positions) into a throwaway SQLite region; then the list is signed and read back for
three mixes of statuses. The baseline is the same statuses as uncompressed JSON
(``{"<index>": "<code>"}``), the naive way to publish them.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from datetime import UTC, datetime

from sqlalchemy import insert, select, update

from bench.fixtures import init_bench_region, throwaway_deployment
from registry.demo import sample_request
from registry.issuance import issue_certificate
from registry.models import Certificate, Region
from registry.regions import current_region
from registry.requests import parse_issuance_request
from registry.status import Status
from registry.status_list import status_list
from verify.status_sources import read_status_list

MIXES = {
    "all VALID": {Status.VALID: 1.0},
    "realistic (95% VALID, 2% EXPIRED, 1% each SUSPENDED/CANCELLED/REVOKED)": {
        Status.VALID: 0.95,
        Status.EXPIRED: 0.02,
        Status.SUSPENDED: 0.01,
        Status.CANCELLED: 0.01,
        Status.REVOKED: 0.01,
    },
    "worst case (uniform over the 7 codes)": dict.fromkeys(Status, 1 / 7),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--certificates", type=int, default=100_000)
    count = parser.parse_args().certificates
    chooser = random.Random(20260301)
    now = datetime.now(UTC)
    with throwaway_deployment() as deployment, deployment.session() as session:
        office = init_bench_region(session, deployment, now)
        region = current_region(session)
        model = issue_certificate(
            session, deployment.keyring, office, parse_issuance_request(sample_request("DL")), now=now, actor="bench"
        ).certificate
        row = {c.key: getattr(model, c.key) for c in Certificate.__table__.columns}
        rows = [
            {**row, "id": f"BENCH-{i:08d}", "status_index": i, "idempotency_key": None, "log_index": None}
            for i in range(1, count)
        ]
        session.execute(insert(Certificate), rows)
        session.execute(update(Region).values(next_status_index=count))
        session.commit()
        print(f"status list of {count:,} certificates (4 bits each, zlib level 9), signed with Ed25519")
        for name, weights in MIXES.items():
            codes = chooser.choices(list(weights), weights=list(weights.values()), k=count)
            for status in Status:
                session.execute(
                    update(Certificate)
                    .where(Certificate.status_index.in_([i for i, s in enumerate(codes) if s is status]))
                    .values(status=status.value)
                    .execution_options(synchronize_session=False)
                )
            session.commit()
            started = time.perf_counter()
            jws = status_list(session, deployment.keyring, now=now)
            signed_in = time.perf_counter() - started
            started = time.perf_counter()
            listed = read_status_list(jws, region.status_public_jwk, issuer="310000", now=now)
            read_in = time.perf_counter() - started
            assert [listed.status_at(i) for i in (0, count - 1)] == [codes[0], codes[count - 1]]
            stored = dict(session.execute(select(Certificate.status_index, Certificate.status)).tuples().all())
            baseline = len(json.dumps({str(i): code for i, code in stored.items()}, separators=(",", ":")))
            print(
                f"  {name}: JWS {len(jws):,} bytes (packed {(count + 1) // 2:,}; naive JSON {baseline:,}); "
                f"signed in {signed_in * 1000:.0f} ms, read in {read_in * 1000:.0f} ms"
            )


if __name__ == "__main__":
    main()
