"""Demo data: a region, an office and one sample certificate of each reference type.

The samples are realistic but fictitious (valid check characters, made-up people and
companies). Tests and benchmarks use the same samples through :func:`sample_request`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.errors import NotFound
from registry.issuance import issue_certificate
from registry.models import Certificate, Office
from registry.offices import add_office, get_office, issue_api_token
from registry.regions import find_region, init_region
from registry.requests import parse_issuance_request
from signing.keystore import KeyRing

DEMO_REGION_CODE = "310000"
DEMO_REGION_NAME = "上海市"
DEMO_OFFICE_CODE = "11310000002418960M"
DEMO_OFFICE_NAME = "上海市示范发证中心"

SAMPLE_REQUESTS: dict[str, dict[str, Any]] = {
    "BL": {
        "type": "BL",
        "holder": {"name": "上海示例科技有限公司", "id_type": "USCC", "id_number": "91310115MA1K3YJ2X5"},
        "fields": {
            "entity_type": "有限责任公司（自然人投资或控股）",
            "legal_representative": "李明",
            "registered_capital": "500万元人民币",
            "established_on": "2019-03-12",
            "address": "上海市浦东新区张江路100号",
            "business_scope": "软件开发；信息技术咨询服务；数据处理服务。",
        },
    },
    "DL": {
        "type": "DL",
        "holder": {"name": "王小红", "id_type": "RIC", "id_number": "310115198506123526"},
        "fields": {
            "sex": "女",
            "nationality": "中国",
            "date_of_birth": "1985-06-12",
            "address": "上海市浦东新区世纪大道200号",
            "first_issued_on": "2008-09-01",
            "vehicle_class": "C1",
            "file_number": "310012345678",
        },
    },
    "PQ": {
        "type": "PQ",
        "holder": {"name": "张伟", "id_type": "RIC", "id_number": "310101199003074415"},
        "fields": {
            "occupation": "电工",
            "level": "三级/高级工",
            "evaluated_on": "2024-06-30",
            "evaluation_body": "上海市职业技能鉴定中心",
            "score": 88,
        },
    },
}


def sample_request(type_code: str, **changes: Any) -> dict[str, Any]:
    """A copy of the sample request body for ``type_code``, with top-level ``changes``."""
    body = {k: (dict(v) if isinstance(v, dict) else v) for k, v in SAMPLE_REQUESTS[type_code].items()}
    body.update(changes)
    return body


@dataclass(frozen=True)
class Demo:
    created: bool
    office_code: str
    api_token: str
    certificates: list[dict[str, str]]


def load_demo(session: Session, keyring: KeyRing, *, public_url: str, now: datetime, actor: str) -> Demo:
    """Create the demo region, office and samples if the database is empty.

    Otherwise leave the data alone and give the demo office a fresh API token, so the
    person starting the demo can use it (the earlier token was shown only once).
    """
    region = find_region(session)
    if region is None:
        region = init_region(
            session, keyring, code=DEMO_REGION_CODE, name=DEMO_REGION_NAME, public_url=public_url, now=now, actor=actor
        )
        office, _key, token = add_office(
            session,
            keyring,
            credit_code=DEMO_OFFICE_CODE,
            name=DEMO_OFFICE_NAME,
            types=list(SAMPLE_REQUESTS),
            algorithm="EdDSA",
            now=now,
            actor=actor,
        )
        for type_code in SAMPLE_REQUESTS:
            issue_certificate(
                session, keyring, office, parse_issuance_request(sample_request(type_code)), now=now, actor=actor
            )
        created = True
    else:
        try:
            office = get_office(session, DEMO_OFFICE_CODE)
        except NotFound as error:
            raise NotFound(
                "the database holds a region that the demo did not create; the demo only loads into an empty database"
            ) from error
        token = issue_api_token(session, office, now=now, actor=actor)
        created = False
    return Demo(
        created=created,
        office_code=office.credit_code,
        api_token=token,
        certificates=_samples(session, office, region.public_url),
    )


def _samples(session: Session, office: Office, public_url: str) -> list[dict[str, str]]:
    rows = session.scalars(
        select(Certificate)
        .where(Certificate.office_id == office.id)
        .order_by(Certificate.issued_at, Certificate.type_code)
    ).all()
    return [{"id": c.id, "type": c.type_code, "qr_text": f"{public_url}/v#{c.token}"} for c in rows[:3]]
