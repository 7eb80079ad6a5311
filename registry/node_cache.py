"""Log nodes already read, kept in memory: a bounded, least-recently-used map from a
perfect subtree's ``(level, position)`` to its hash.

No invalidation is needed. A node is stored once, when the last leaf under it is
appended, and never changes: ``log_node`` is append-only in the database itself
(:mod:`registry.append_only`) and its primary key is ``(level, position)``, so a hash
read once is that node's hash for as long as the database lives. Fill a cache only from
sessions that see committed rows alone (a reading session): a node written by a
transaction that later rolls back must never be kept. A cache belongs to one database (one
deployment object): a database emptied and refilled (tests) needs a new one.

Size: about 200 bytes per node in CPython (the packed key, the 32-byte hash, the map's
links), so :data:`DEFAULT_CAPACITY` nodes take about 40 MB (measured); that holds every node of a log
of some 100 000 entries, and for longer logs the upper levels every proof shares.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Final

DEFAULT_CAPACITY: Final = 200_000
_POSITION_BITS: Final = 48  # a log of 2^48 entries is beyond any region's

NodeKey = tuple[int, int]
"""``(level, position)`` of a perfect subtree, as ``log_node`` stores it."""


class NodeCache:
    """At most ``capacity`` node hashes, the least recently used dropped first.

    Thread-safe (gunicorn may run threads): each call holds a lock for its few dict
    operations.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("a node cache holds at least one node")
        self._capacity = capacity
        # Keyed by level and position packed in one int: a tuple key costs 50 bytes more.
        self._hashes: OrderedDict[int, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._hashes)

    def known(self, wanted: Iterable[NodeKey]) -> dict[NodeKey, bytes]:
        """The hashes held of the ``wanted`` nodes (the others are left out)."""
        found = {}
        with self._lock:
            for level, position in wanted:
                packed = level << _POSITION_BITS | position
                hashed = self._hashes.get(packed)
                if hashed is not None:
                    self._hashes.move_to_end(packed)
                    found[level, position] = hashed
        return found

    def keep(self, read: Mapping[NodeKey, bytes]) -> None:
        """Hold nodes just read from the database (committed ones only, see the module)."""
        with self._lock:
            for (level, position), hashed in read.items():
                packed = level << _POSITION_BITS | position
                self._hashes[packed] = hashed
                self._hashes.move_to_end(packed)
            while len(self._hashes) > self._capacity:
                self._hashes.popitem(last=False)
