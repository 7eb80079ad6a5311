"""Verdicts and reason codes (stable API), with plain-words explanations."""

from __future__ import annotations

from enum import Enum


class Verdict(Enum):
    VALID = "VALID"
    INVALID = "INVALID"
    UNDETERMINED = "UNDETERMINED"


# Code → (English, Chinese). Codes are public API: add, never rename or reuse.
REASONS: dict[str, tuple[str, str]] = {
    "OK": ("The certificate is genuine, registered and in force.", "证照真实有效。"),
    "MALFORMED": ("This is not a well-formed certificate code.", "证照码格式不正确。"),
    "TOO_LARGE": ("The certificate code is too large.", "证照码过长。"),
    "ALG_NOT_ALLOWED": ("The signature algorithm is not allowed for this key.", "签名算法不被允许。"),
    "HEADER_FORBIDDEN": ("The token header holds members that are not allowed.", "令牌头包含不允许的成员。"),
    "DUPLICATE_MEMBER": (
        "The token repeats a member; it may have been tampered with.",
        "令牌包含重复成员，可能被篡改。",
    ),
    "TYP_INVALID": ("This is not an ecert certificate token.", "不是电子证照令牌。"),
    "KEY_UNKNOWN": ("The signing key is not known to the issuing region.", "签名密钥未在签发地区登记。"),
    "REGION_NOT_RECOGNISED": ("The issuing region is not recognised here.", "签发地区未被本地区互认。"),
    "SIG_INVALID": (
        "The signature does not match: the certificate was forged or altered.",
        "签名不符：证照被伪造或篡改。",
    ),
    "TYPE_MISMATCH": ("The key may not sign certificates of this type.", "该密钥无权签发此类证照。"),
    "ISSUER_MISMATCH": (
        "The certificate names an issuer other than the key's office.",
        "证照所载签发机构与签名密钥不符。",
    ),
    "KEY_NOT_VALID_AT_IAT": ("The key was not valid when the certificate was issued.", "签发时签名密钥不在有效期内。"),
    "KEY_COMPROMISED": (
        "The signing key was compromised before this certificate was issued.",
        "签名密钥在签发前已泄露。",
    ),
    "NOT_YET_VALID": ("The certificate is not valid yet.", "证照尚未生效。"),
    "EXPIRED": ("The certificate has expired.", "证照已过期失效。"),
    "NOT_IN_REGISTRY": (
        "The issuing registry has no record of this certificate: it is a forgery.",
        "签发库中无此证照记录：系伪造证照。",
    ),
    "SUSPENDED": ("The certificate is suspended.", "证照已被暂扣。"),
    "WITHDRAWN": ("The certificate was withdrawn.", "证照已被撤销。"),
    "CANCELLED": ("The certificate was cancelled.", "证照已被注销。"),
    "TRANSFERRED": ("The certificate was transferred out.", "证照已转出。"),
    "REVOKED": ("The certificate was revoked.", "证照已被吊销。"),
    "TRUSTLIST_ROLLBACK": ("The issuing region's trust list was rolled back.", "签发地区信任列表被回滚。"),
    "TRUSTLIST_STALE": ("The issuing region's trust list is out of date.", "签发地区信任列表已过期。"),
    "STATUS_UNAVAILABLE": ("The certificate's status cannot be checked right now.", "暂时无法查询证照状态。"),
}
