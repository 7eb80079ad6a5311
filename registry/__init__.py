"""The region's registry: catalog, offices and keys, certificates, status, audit.

SQLAlchemy models and the services that change them. Services take a session (and a
clock reading, and keys) as arguments and never commit: the caller owns the
transaction. No Flask here except in ``api.py`` and ``cli.py``.
"""
