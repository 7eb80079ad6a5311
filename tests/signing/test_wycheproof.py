"""Wycheproof signature vectors through our signature layer (as pyca/cryptography runs them).

Every ``valid`` and ``invalid`` case must get the expected answer from
:func:`signing.algorithms.verify_signature`; ``acceptable`` cases may go either way.
The vectors live in ``shared/vectors`` beside the repository (see its README.md); a
missing folder fails the run rather than silently skipping the vectors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from signing.algorithms import Algorithm, PublicKey, verify_signature

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors"
WYCHEPROOF = VECTORS / "wycheproof"

# (id prefix, file, our algorithm, number of cases the file declares)
SUITES: list[tuple[str, str, Algorithm, int]] = [
    ("ed25519", "ed25519_test.json", "EdDSA", 151),
    ("p256", "ecdsa_secp256r1_sha256_p1363_test.json", "ES256", 262),
]


def _public_key(algorithm: Algorithm, group: dict[str, Any]) -> PublicKey:
    encoded = group["publicKey"]
    if algorithm == "EdDSA":
        return ed25519.Ed25519PublicKey.from_public_bytes(bytes.fromhex(encoded["pk"]))
    assert encoded["curve"] == "secp256r1"
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), bytes.fromhex(encoded["uncompressed"]))


def _cases() -> list[Any]:
    cases: list[Any] = []
    for prefix, filename, algorithm, _ in SUITES:
        path = WYCHEPROOF / filename
        if not path.is_file():
            # One failing case instead of an empty (skipped) parametrisation.
            cases.append(pytest.param(None, id=f"{prefix}-vectors-missing"))
            continue
        suite = json.loads(path.read_text(encoding="utf-8"))
        for group in suite["testGroups"]:
            for test in group["tests"]:
                case = (algorithm, group, test)
                cases.append(pytest.param(case, id=f"{prefix}-tc{test['tcId']}"))
    return cases


def test_vector_files_are_present_and_complete() -> None:
    assert VECTORS.is_dir(), f"test vectors not found at {VECTORS}; shared/ must sit beside the repository"
    for _, filename, _, declared in SUITES:
        suite = json.loads((WYCHEPROOF / filename).read_text(encoding="utf-8"))
        counted = sum(len(group["tests"]) for group in suite["testGroups"])
        assert counted == suite["numberOfTests"] == declared, filename


@pytest.mark.parametrize("case", _cases())
def test_signature_vector(case: tuple[Algorithm, dict[str, Any], dict[str, Any]] | None) -> None:
    if case is None:
        pytest.fail(f"Wycheproof vectors not found under {WYCHEPROOF}")
    algorithm, group, test = case
    public_key = _public_key(algorithm, group)

    accepted = verify_signature(algorithm, public_key, bytes.fromhex(test["msg"]), bytes.fromhex(test["sig"]))

    if test["result"] == "acceptable":
        return  # either answer is allowed (README.md); the strict one is preferred
    expected = test["result"] == "valid"
    assert accepted is expected, f"{test['comment']} {test['flags']}"
