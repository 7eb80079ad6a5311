"""Fetching another region's signed documents over HTTP: bounded in time and size.

Everything fetched is a JWS that is checked afterwards with keys we already hold, so the
fetcher only has to be a careful HTTP client: ``http``/``https`` only, no redirects (a
redirect could send us anywhere), a short timeout, a size cap read as a stream (a peer
cannot make us buffer more than the cap), and bodies in the expected encoding (ASCII for a compact JWS, UTF-8 for a signed note).
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import urlsplit

import httpx

from verify.errors import VerifyError

DEFAULT_TIMEOUT: Final = 3.0  # seconds, per connect / read / write
USER_AGENT: Final = "ecert-peer/1"
_BEARER = re.compile(r"[A-Za-z0-9._~+/-]+=*")  # RFC 6750 b64token: nothing to break the header


class FetchFailed(VerifyError):
    """The document could not be fetched: unreachable, not 200, too large, badly encoded."""

    code = "PEER_UNREACHABLE"

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.detail = f"{url}: {reason}"


class Fetcher:
    """One HTTP client (connection pool) for all of a process's fetches; thread-safe."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.timeout = timeout
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT, "Accept": "application/jwt"},
            trust_env=False,  # no proxy or netrc settings from the environment
        )

    def get_text(
        self,
        url: str,
        *,
        max_bytes: int,
        timeout: float | None = None,
        encoding: str = "ascii",
        bearer: str | None = None,
    ) -> str:
        """The body of ``GET url`` as text, if it answers 200 within the limits.

        ``bearer`` is sent as ``Authorization: Bearer ...`` on this one request (no
        redirect is followed, so it reaches no other URL); it appears in no error message.

        Raises:
            FetchFailed: not an http(s) URL, a network error or timeout, a status other
                than 200, a body larger than ``max_bytes``, or a body not in ``encoding``
                (ASCII, as a compact JWS is; a signed note is UTF-8).
        """
        if urlsplit(url).scheme not in ("http", "https"):
            raise FetchFailed(url, "only http and https URLs are fetched")
        if bearer is not None and not _BEARER.fullmatch(bearer):
            # Refused here, not by the HTTP library, whose message would quote the header.
            raise FetchFailed(url, "the credential to present is not a bearer token")
        headers = {} if bearer is None else {"Authorization": f"Bearer {bearer}"}
        try:
            with self._client.stream("GET", url, timeout=timeout or self.timeout, headers=headers) as response:
                if response.status_code != 200:
                    raise FetchFailed(url, f"answered HTTP {response.status_code}")
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > max_bytes:
                        raise FetchFailed(url, f"the answer is larger than {max_bytes} bytes")
        except httpx.HTTPError as error:
            raise FetchFailed(url, f"{type(error).__name__}: {error}") from error
        try:
            return body.decode(encoding)
        except UnicodeDecodeError as error:
            raise FetchFailed(url, f"the answer is not {encoding} text") from error

    def close(self) -> None:
        self._client.close()
