"""Abuse throttling with Flask-Limiter: who may call how often.

Three limits, each a setting (:class:`deployment.RateLimits`), counted in fixed windows:

* verification (``ECERT_VERIFY_RATE_LIMIT``, per client address), shared by every
  verification endpoint (:mod:`web.audiences`); a batch (``POST /api/v1/verify/batch``)
  counts one per token, and is refused whole when its tokens do not fit in what is left
  of the window (nothing is charged for it then). A partner region presenting its token
  (``Authorization: Bearer ecertp_...``) is counted per partner under
  ``ECERT_PARTNER_RATE_LIMIT`` instead; a token with that prefix that is not a live
  partner token is refused (``401``), never ignored. Other credentials (an office's
  token) mean nothing here: the caller counts as anonymous;
* other public reads (``ECERT_PUBLIC_RATE_LIMIT``, per address): the log (whose
  ``entries`` publish every token), trust and status lists, catalog, page, documents;
* failed authentications (``ECERT_AUTH_FAILURE_LIMIT``, per address): every ``401``
  answered to a request carrying ``Authorization`` counts; once the limit is reached,
  every request from that address carrying credentials is refused until the window
  passes, even with a correct token, so guessing tokens cannot go fast.

Office endpoints have no limit of their own. A refusal is ``429 RATE_LIMITED`` with
``Retry-After`` (seconds). Counters live in ``ECERT_RATE_LIMIT_STORAGE``: ``memory://``
counts per worker process; a Redis URL shares them between workers and servers. Keys
carry the deployment's public URL, so regions may share one Redis. If the storage fails,
each worker falls back to counting in memory (logged) rather than refusing service.
The client address is the connection's peer unless ``ECERT_TRUSTED_PROXIES`` says how
many proxies' ``X-Forwarded-For`` to believe (werkzeug ``ProxyFix``, set up in app.py).
"""

from __future__ import annotations

import math
import time
from typing import Any, Final

from flask import Flask, Response, current_app, g, request
from flask_limiter import ApplicationLimit, Limiter, RateLimitExceeded
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException

from deployment import RateLimits
from registry.partners import PARTNER_TOKEN_PREFIX, authenticate_partner
from verify.api import BATCH_ENDPOINT, batch_tokens
from verify.errors import VerifyError
from web.audiences import Audience, audience_of, request_audience
from web.context import read_db
from web.problems import HttpProblem, problem_response

EXTENSION: Final = "ecert.limiter"
VERIFICATION_SCOPE: Final = "verification"
PUBLIC_SCOPE: Final = "public"
AUTH_FAILURE_SCOPE: Final = "authentication-failures"


def init_app(app: Flask, limits: RateLimits, *, deployment_name: str) -> Limiter:
    """Attach the limits to every route ``app`` has now (call after its blueprints).

    ``deployment_name`` (the public URL) keeps this deployment's counters apart from
    another's in a shared storage.
    """
    auth_failures = []
    every_limit = (limits.verify, limits.partner, limits.public, limits.auth_failures)
    if limits.auth_failures is not None:
        auth_failures.append(
            ApplicationLimit(
                limit_provider=limits.auth_failures,
                key_function=client_address,
                scope=AUTH_FAILURE_SCOPE,
                exempt_when=lambda: "Authorization" not in request.headers,
                # Checked before the request, counted only when it was refused credentials.
                deduct_when=lambda response: response.status_code == 401,
            )
        )
    limiter = Limiter(
        key_func=client_address,
        storage_uri=limits.storage,
        strategy="fixed-window",
        key_prefix=f"ecert|{deployment_name}",
        application_limits=auth_failures,  # type: ignore[arg-type]
        in_memory_fallback_enabled=True,
        # With every limit off, not even its per-request bookkeeping runs.
        enabled=any(limit is not None for limit in every_limit),
    )
    limiter.init_app(app)
    app.extensions[EXTENSION] = limiter
    # Registered after the limiter's own check, so a blocked address is refused before
    # its partner token is even looked up.
    app.before_request(_authenticate_partner)
    verification = limiter.shared_limit(_verification_limit, VERIFICATION_SCOPE, key_func=_verification_key)
    # The same counter, charged per token: tested before the batch runs, deducted after
    # (so a refused batch costs nothing; batches in flight at once may overrun it together).
    per_token = limiter.shared_limit(
        _verification_limit,
        VERIFICATION_SCOPE,
        key_func=_verification_key,
        cost=_batch_cost,
        deduct_when=lambda response: response.status_code != 429,
    )
    public = limiter.shared_limit(limits.public or "", PUBLIC_SCOPE)
    # Offices have no limit; a limit that is off is not attached (it would still cost
    # every request it wraps).
    by_audience = {}
    if limits.verify is not None or limits.partner is not None:
        by_audience[Audience.VERIFICATION] = verification
    if limits.public is not None:
        by_audience[Audience.PUBLIC] = public
    rules = {rule.endpoint: rule.rule for rule in app.url_map.iter_rules()}
    for endpoint, view in list(app.view_functions.items()):
        limit = by_audience.get(audience_of(endpoint, rules.get(endpoint)))
        if limit is not None and endpoint == BATCH_ENDPOINT:
            limit = per_token
        if limit is not None and endpoint.split(".")[-1] != "static":  # assets are never counted
            wrapped: Any = limit(view)  # Flask-Limiter types its wrapper as possibly async
            app.view_functions[endpoint] = wrapped
    app.register_error_handler(RateLimitExceeded, _too_many_requests)
    return limiter


def client_address() -> str:
    """The client's address: the peer, or what the trusted proxies say (ProxyFix)."""
    return request.remote_addr or "unknown"


def calling_partner(session: Session) -> str | None:
    """The region code of the partner whose token this request carries; None when it
    carries none. Verification needs no credentials, so others (an office's token, say)
    are ignored: the caller is anonymous.

    Raises:
        NotAuthenticated: a bearer token with the partner prefix that is not a live partner token.
    """
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    credentials = credentials.strip()
    if scheme.lower() != "bearer" or not credentials.startswith(PARTNER_TOKEN_PREFIX):
        return None
    return authenticate_partner(session, credentials).region_code


def _authenticate_partner() -> None:
    if request.endpoint is not None and request_audience() is Audience.VERIFICATION:
        g.ecert_partner = calling_partner(read_db())


def _limits() -> RateLimits:
    return current_app.extensions["ecert"].settings.limits  # type: ignore[no-any-return]


def _verification_limit() -> str:
    # An empty limit is no limit: "off".
    if g.get("ecert_partner") is not None:
        return _limits().partner or ""
    return _limits().verify or ""


def _verification_key() -> str:
    partner = g.get("ecert_partner")
    return f"partner:{partner}" if partner is not None else f"address:{client_address()}"


def _batch_cost() -> int:
    """A batch costs one verification per token; one the view will refuse (a bad body)
    costs one, as any request."""
    try:
        return len(batch_tokens())
    except (HttpProblem, VerifyError, HTTPException):
        return 1


def _too_many_requests(error: RateLimitExceeded) -> Response:
    limiter: Limiter = current_app.extensions[EXTENSION]
    breached = limiter.current_limit
    retry_after = 1
    if breached is not None:
        retry_after = max(1, math.ceil(breached.window.reset_time - time.time()))
    scope = error.limit.scope if isinstance(error.limit.scope, str) else ""
    if scope == AUTH_FAILURE_SCOPE:
        detail = "too many failed authentications from this address"
    elif scope == VERIFICATION_SCOPE:
        detail = (
            "too many verification requests from this partner"
            if g.get("ecert_partner") is not None
            else "too many verification requests from this address (partner regions: use your API token)"
        )
        if request.endpoint == BATCH_ENDPOINT:
            detail += f"; this batch counts {_batch_cost()} (one per token), more than is left in the window"
    else:
        detail = "too many requests from this address"
    response = problem_response(
        429, "RATE_LIMITED", "Too Many Requests", f"{detail}; retry in {retry_after} s", retry_after=retry_after
    )
    response.headers["Retry-After"] = str(retry_after)
    return response
