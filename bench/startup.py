"""Cold start and memory per worker: ours beside the bare Flask + PyJWT app.

    ./scripts/bench startup [--starts 5] [--requests 200] [--database-url URL]

Each start spawns gunicorn (production's config, 2 sync workers) and times it until the
first 200 answer to a verification POST (``/api/v1/verify`` for ours, with a real
token); ours and the baseline start in turn, interleaved, and figures are medians. After
each start, ``--requests`` verifications of real tokens, then the VmRSS of every worker.
"""

from __future__ import annotations

import argparse
import statistics

from bench.servers import Gunicorn, post_json
from bench.verify_http import BARE, OURS, Region, issue_over_http, office_public_jwk, prepared_region


def exercise(server: Gunicorn, path: str, tokens: list[str], requests: int) -> None:
    for i in range(requests):
        status, _body = post_json(server.url + path, {"token": tokens[i % len(tokens)]})
        if status != 200:
            raise RuntimeError(f"{path} answered {status}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--requests", type=int, default=200, help="verifications after each start")
    parser.add_argument("--database-url", default=None, help="a PostgreSQL server (default: SQLite)")
    options = parser.parse_args()

    with prepared_region(options.database_url) as region:
        first = region.start("issuer.log")
        try:
            tokens = issue_over_http(first, region.api_token, 30)
            public_jwk = office_public_jwk(first, tokens)
        finally:
            first.stop()
        cold: dict[str, list[float]] = {"ours": [], "bare": []}
        rss: dict[str, list[float]] = {"ours": [], "bare": []}
        for start in range(options.starts):
            for name in ["ours", "bare"] if start % 2 == 0 else ["bare", "ours"]:
                server = _start(region, name, public_jwk, f"{name}-{start}.log", tokens[0])
                try:
                    cold[name].append(server.cold_start)
                    exercise(server, OURS[1] if name == "ours" else BARE[1], tokens, options.requests)
                    rss[name].extend(server.worker_rss_mib())
                finally:
                    server.stop()

    database = "PostgreSQL" if options.database_url else "SQLite"
    print(
        f"cold start and memory: gunicorn, 2 sync workers, {database}; {options.starts} interleaved starts "
        f"each, {options.requests} verifications after each (medians)"
    )
    print(f"{'':<6}{'first 200 s':>12}{'min':>7}{'max':>7}{'worker RSS MiB':>16}")
    for name in cold:
        print(
            f"{name:<6}{statistics.median(cold[name]):>12.2f}{min(cold[name]):>7.2f}{max(cold[name]):>7.2f}"
            f"{statistics.median(rss[name]):>16.0f}"
        )
    print(
        f"ours/bare: cold start {statistics.median(cold['ours']) / statistics.median(cold['bare']):.1f}x, "
        f"memory per worker {statistics.median(rss['ours']) / statistics.median(rss['bare']):.1f}x (no goal set)"
    )


def _start(region: Region, name: str, public_jwk: dict[str, object], log_name: str, token: str) -> Gunicorn:
    if name == "ours":
        return region.start(log_name, token)
    return region.start_bare(public_jwk, log_name, token)


if __name__ == "__main__":
    main()
