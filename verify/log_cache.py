"""What verifications keep of our own log between requests (issue 7): the nodes of
inclusion proofs and the newest checkpoint seen, so that verifying one of our tokens
again costs no read of the log at all.

* Nodes (:class:`registry.node_cache.NodeCache`): a stored node never changes, so a
  hash read once needs no invalidation; the cache is bounded (least recently used
  first out). Only reading sessions fill it: they see committed nodes alone.
* The checkpoint: any signed checkpoint whose size covers an entry gives a valid
  inclusion proof of it, and kept checkpoints are append-only (one held never becomes
  false). The held one is used while it covers every entry asked about and was the
  newest at most :data:`CHECKPOINT_REUSE` before the verification; otherwise the newest
  is read again (and one signed when none covers, as before). So an answer's checkpoint
  is at most that much older than the newest.

One cache per deployment object (one process, one database), beside the registry-view
cache (:mod:`verify.cache`): a new app, as every test makes, starts with an empty one.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from registry.node_cache import DEFAULT_CAPACITY, NodeCache

# Answers carry a checkpoint that was the log's newest at most this long before.
CHECKPOINT_REUSE: Final = timedelta(seconds=10)


@dataclass(frozen=True)
class HeldCheckpoint:
    """A signed checkpoint of ``size`` entries (its ``note``), the newest kept at ``newest_at``."""

    size: int
    note: str
    newest_at: datetime


class OwnLogCache:
    """Our log's proof nodes and newest checkpoint, for one deployment. Thread-safe."""

    def __init__(self, node_capacity: int = DEFAULT_CAPACITY) -> None:
        self.nodes = NodeCache(node_capacity)
        self._checkpoint: HeldCheckpoint | None = None
        self._lock = threading.Lock()

    def checkpoint_covering(self, size: int, now: datetime) -> HeldCheckpoint | None:
        """The held checkpoint, if it covers the first ``size`` entries and was the newest
        at most :data:`CHECKPOINT_REUSE` before ``now`` (a clock set back: not reused)."""
        held = self._checkpoint
        if held is None or held.size < size or not held.newest_at <= now < held.newest_at + CHECKPOINT_REUSE:
            return None
        return held

    def hold(self, size: int, note: str, now: datetime) -> None:
        """Hold a checkpoint just read as the newest kept one (or just signed) at ``now``;
        a larger one held meanwhile by a concurrent verification stays."""
        with self._lock:
            held = self._checkpoint
            if held is None or size > held.size or (size == held.size and now > held.newest_at):
                self._checkpoint = HeldCheckpoint(size, note, now)
