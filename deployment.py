"""One deployment's wiring: settings from the environment, database, keys, clock.

Flask-free, so the app, the CLI, tests and benchmarks assemble a region the same way.
Two deployments from one checkout differ only by the environment they read.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from limits import parse_many
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from registry.database import is_sqlite, make_engine, make_session_factory
from signing.keystore import KeyRing
from verify.cache import RegistryViewCache
from verify.fetch import Fetcher
from verify.live import live_verifier
from verify.log_cache import OwnLogCache
from verify.verifier import Verifier

log = logging.getLogger(__name__)

# Used only in debug and testing, where an explicit passphrase may be absent.
INSECURE_DEVELOPMENT_PASSPHRASE = "ecert-insecure-development-passphrase"  # noqa: S105
DEFAULT_PUBLIC_URL = "http://127.0.0.1:5000"
DEFAULT_VERIFY_RATE_LIMIT = "60/minute"  # anonymous verification, per client address
DEFAULT_PARTNER_RATE_LIMIT = "6000/minute"  # verification by a partner region, per partner
DEFAULT_PUBLIC_RATE_LIMIT = "600/minute"  # other public reads (log, trust list, ...), per address
DEFAULT_AUTH_FAILURE_LIMIT = "10/minute"  # rejected credentials, per address
DEFAULT_RATE_LIMIT_STORAGE = "memory://"
# Where counters may live: one process's memory, or a Redis server all workers share.
RATE_LIMIT_STORAGE_SCHEMES = frozenset({"memory", "redis", "rediss", "redis+unix", "redis+sentinel", "redis+cluster"})


class ConfigurationError(Exception):
    code = "CONFIGURATION"


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Settings:
    database_url: str
    public_url: str
    secret_key: str | None
    key_passphrase: str
    verify_leeway: timedelta
    limits: RateLimits = field(default_factory=lambda: RateLimits())
    # How many reverse proxies in front of the app to believe about the client's address
    # and scheme (X-Forwarded-For, X-Forwarded-Proto); 0 believes none of them.
    trusted_proxies: int = 0

    @classmethod
    def load(
        cls, environ: Mapping[str, str], overrides: Mapping[str, Any], *, instance_path: str, insecure_ok: bool
    ) -> Settings:
        """Settings from ``overrides`` (app config) falling back to the environment.

        Raises:
            ConfigurationError: no key passphrase outside debug/testing, or a bad value.
        """

        def get(name: str, default: str | None = None) -> str | None:
            value = overrides.get(name)
            if value is None:
                value = environ.get(name)
            return default if value in (None, "") else str(value)

        default_db = "sqlite:///" + str(Path(instance_path) / "ecert.db")
        passphrase = get("ECERT_KEY_PASSPHRASE")
        if passphrase is None:
            if not insecure_ok:
                raise ConfigurationError(
                    "ECERT_KEY_PASSPHRASE is not set: private keys are encrypted at rest with it, "
                    "and the service refuses to start without one outside debug or testing"
                )
            log.warning("ECERT_KEY_PASSPHRASE is not set; using the insecure development passphrase")
            passphrase = INSECURE_DEVELOPMENT_PASSPHRASE
        leeway_text = get("ECERT_VERIFY_LEEWAY_SECONDS", "60") or "60"
        if not re.fullmatch(r"[0-9]{1,4}", leeway_text) or int(leeway_text) > 3600:
            raise ConfigurationError("ECERT_VERIFY_LEEWAY_SECONDS must be a whole number of seconds from 0 to 3600")
        leeway = timedelta(seconds=int(leeway_text))
        proxies_text = get("ECERT_TRUSTED_PROXIES", "0") or "0"
        if not re.fullmatch(r"[0-9]", proxies_text):
            raise ConfigurationError("ECERT_TRUSTED_PROXIES must be a whole number of proxies from 0 to 9")
        return cls(
            database_url=get("ECERT_DATABASE_URL", default_db) or default_db,
            public_url=(get("ECERT_PUBLIC_URL", DEFAULT_PUBLIC_URL) or DEFAULT_PUBLIC_URL).rstrip("/"),
            secret_key=get("ECERT_SECRET_KEY"),
            key_passphrase=passphrase,
            verify_leeway=leeway,
            limits=RateLimits.load(get),
            trusted_proxies=int(proxies_text),
        )


@dataclass(frozen=True)
class RateLimits:
    """Rate limits in the ``limits`` notation (``60/minute``, ``1000 per hour``); None is off."""

    verify: str | None = DEFAULT_VERIFY_RATE_LIMIT
    partner: str | None = DEFAULT_PARTNER_RATE_LIMIT
    public: str | None = DEFAULT_PUBLIC_RATE_LIMIT
    auth_failures: str | None = DEFAULT_AUTH_FAILURE_LIMIT
    storage: str = DEFAULT_RATE_LIMIT_STORAGE

    @classmethod
    def load(cls, get: Callable[[str, str], str | None]) -> RateLimits:
        """The limits named by the ``ECERT_*_RATE_LIMIT`` settings, each checked.

        Raises:
            ConfigurationError: a limit that does not parse, or an unknown storage scheme.
        """

        def limit(name: str, default: str) -> str | None:
            text = (get(name, default) or default).strip()
            if text.lower() == "off":
                return None
            try:
                parsed = parse_many(text)
            except ValueError as error:
                raise ConfigurationError(
                    f"{name} must be a rate limit such as 60/minute or 1000 per hour, or off; got {text!r}"
                ) from error
            if not parsed or any(item.amount < 1 for item in parsed):
                raise ConfigurationError(f"{name} must allow at least one request, or be off; got {text!r}")
            return text

        storage = (get("ECERT_RATE_LIMIT_STORAGE", DEFAULT_RATE_LIMIT_STORAGE) or DEFAULT_RATE_LIMIT_STORAGE).strip()
        scheme, separator, _ = storage.partition("://")
        if not separator or scheme not in RATE_LIMIT_STORAGE_SCHEMES:
            raise ConfigurationError(
                "ECERT_RATE_LIMIT_STORAGE must be memory:// or a Redis URL such as redis://127.0.0.1:6379/0; "
                f"got {storage!r}"
            )
        return cls(
            verify=limit("ECERT_VERIFY_RATE_LIMIT", DEFAULT_VERIFY_RATE_LIMIT),
            partner=limit("ECERT_PARTNER_RATE_LIMIT", DEFAULT_PARTNER_RATE_LIMIT),
            public=limit("ECERT_PUBLIC_RATE_LIMIT", DEFAULT_PUBLIC_RATE_LIMIT),
            auth_failures=limit("ECERT_AUTH_FAILURE_LIMIT", DEFAULT_AUTH_FAILURE_LIMIT),
            storage=storage,
        )


class Deployment:
    """The shared objects of one running region: engine, sessions, key ring, clock."""

    def __init__(self, settings: Settings, clock: Callable[[], datetime] = system_clock) -> None:
        self.settings = settings
        self.engine: Engine = make_engine(settings.database_url)
        self.sessions: sessionmaker[Session] = make_session_factory(self.engine)
        # Sessions that only read (verification, lookups). PostgreSQL shares the
        # engine; SQLite gets deferred transactions so readers never queue on writers.
        self.read_engine: Engine = (
            make_engine(settings.database_url, for_writing=False) if is_sqlite(settings.database_url) else self.engine
        )
        self.read_sessions: sessionmaker[Session] = make_session_factory(self.read_engine)
        self.keyring = KeyRing(settings.key_passphrase)
        self.clock = clock
        # One HTTP client for fetching peers' signed documents (trust and status lists).
        self.fetcher = Fetcher()
        # What every verification reads besides the certificate (region, keys, catalog,
        # peers), kept for this process until the database's cache generation moves.
        self.registry_views = RegistryViewCache(self.keyring)
        # Our log's proof nodes (never change) and newest checkpoint (reused for seconds).
        self.log_cache = OwnLogCache()

    def now(self) -> datetime:
        return self.clock()

    def verifier(self, session: Session, *, now: datetime, actor: str) -> Verifier:
        """The verifier of this running deployment for one request or command, reading our
        registry through ``session``: its caches, its peers, online status from other
        regions, checkpoints signed when an answer needs one."""
        return live_verifier(
            session,
            views=self.registry_views,
            log_cache=self.log_cache,
            writer=self.sessions,
            keyring=self.keyring,
            fetcher=self.fetcher,
            now=now,
            leeway=self.settings.verify_leeway,
            actor=actor,
        )

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session for one command or job; the caller commits, anything else rolls back."""
        session = self.sessions()
        try:
            yield session
        finally:
            session.close()

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A session for work that only reads; never commit it."""
        session = self.read_sessions()
        try:
            yield session
        finally:
            session.close()

    def dispose(self) -> None:
        self.fetcher.close()
        self.engine.dispose()
        self.read_engine.dispose()


def ensure_sqlite_folder(database_url: str) -> None:
    """Create the folder of a SQLite database file, so a fresh checkout just works."""
    if database_url.startswith("sqlite:///") and database_url != "sqlite:///:memory:":
        Path(database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
