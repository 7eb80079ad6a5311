"""The HTTP baseline: a bare Flask + PyJWT app that only checks an Ed25519 signature.

    BENCH_PUBLIC_JWK='{"kty":"OKP",...}' gunicorn -c gunicorn.conf.py 'bench.bare_app:create_app()'

One route, ``POST /verify`` with ``{"token": "..."}``: ``jwt.decode`` with one fixed
public key and the EdDSA algorithm, and a small JSON answer. No registry, no trust list,
no status, no log: the least a verification service can do, served the same way.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jwt
from flask import Flask, jsonify, request


def create_app() -> Flask:
    key = jwt.PyJWK(json.loads(os.environ["BENCH_PUBLIC_JWK"]), algorithm="EdDSA").key
    app = Flask(__name__)

    @app.post("/verify")
    def verify() -> Any:
        body = request.get_json(silent=True)
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(token, str):
            return jsonify({"verdict": "INVALID", "code": "MALFORMED"}), 400
        try:
            claims = jwt.decode(token, key, algorithms=["EdDSA"])
        except jwt.InvalidTokenError as error:
            return jsonify({"verdict": "INVALID", "code": type(error).__name__})
        return jsonify({"verdict": "VALID", "code": "OK", "id": claims.get("jti")})

    return app
