"""Where the verifier learns whether a certificate is registered, and its status."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from registry.models import Certificate
from registry.status import Status


@dataclass(frozen=True)
class RegistryRecord:
    """What the issuing registry holds for a certificate identifier."""

    signing_input: bytes
    status: Status


class OwnRegistry:
    """Our own registry: exact and always current."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def lookup(self, certificate_id: str) -> RegistryRecord | None:
        """The record for ``certificate_id``, or None if the registry never issued it.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the registry cannot be read.
        """
        row = self._session.get(Certificate, certificate_id)
        if row is None:
            return None
        header_and_payload = row.token.rsplit(".", 1)[0]
        return RegistryRecord(signing_input=header_and_payload.encode("ascii"), status=Status(row.status))
