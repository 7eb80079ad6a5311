"""The OpenAPI 3.1 document of the HTTP API, and a page that shows it.

* ``GET /api/v1/openapi.json`` → the document, ``web/openapi.json``, as written.
* ``GET /api/docs`` → every operation (method, path, summary, parameters, bodies,
  answers), rendered on the server from the same document: no script, no asset from
  another site, so the strict page policy of :mod:`web.headers` holds.

The document is hand-written data, not generated from the views: it is the contract
other regions build against, and ``tests/api/test_openapi.py`` holds it to the routes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from flask import Blueprint, Response, jsonify, render_template

blueprint = Blueprint("openapi", __name__, template_folder="templates")

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
REF_PREFIX = "#/components/"


@cache
def openapi_document() -> dict[str, Any]:
    """The OpenAPI document, parsed once per process (treat it as read-only)."""
    text = (resources.files("web") / "openapi.json").read_text(encoding="utf-8")
    return json.loads(text)  # type: ignore[no-any-return]


@blueprint.get("/api/v1/openapi.json")
def document() -> Response:
    response = jsonify(openapi_document())
    response.headers["Cache-Control"] = "no-cache"
    return response


@blueprint.get("/api/docs")
def docs_page() -> Response:
    document = openapi_document()
    components = document.get("components", {})
    page = render_template(
        "openapi.html",
        info=document["info"],
        tags=document.get("tags", []),
        operations=operations(document),
        schemas=[Block(name, _pretty(schema), _refs(schema)) for name, schema in components.get("schemas", {}).items()],
        security_schemes=components.get("securitySchemes", {}),
    )
    response = Response(page, mimetype="text/html")
    response.headers["Cache-Control"] = "no-cache"
    return response


@dataclass(frozen=True)
class Block:
    """A schema shown as JSON, with the named schemas it refers to (for links)."""

    name: str
    text: str
    refs: list[str]


@dataclass(frozen=True)
class Parameter:
    name: str
    location: str
    required: bool
    description: str
    schema: Block


@dataclass(frozen=True)
class Answer:
    status: str
    description: str
    headers: list[str]
    bodies: list[Block]


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    operation_id: str
    summary: str
    description: str
    tags: list[str]
    security: list[str]
    parameters: list[Parameter]
    request_bodies: list[Block]
    answers: list[Answer] = field(default_factory=list)

    @property
    def anchor(self) -> str:
        return f"op-{self.operation_id}"


def operations(document: dict[str, Any]) -> list[Operation]:
    """Every operation of ``document``, in document order, with references to shared
    parameters and responses resolved (schemas stay references, shown as links)."""
    found = []
    for path, item in document["paths"].items():
        for method in HTTP_METHODS:
            if method not in item:
                continue
            spec = item[method]
            body = _resolve(document, spec.get("requestBody", {}))
            found.append(
                Operation(
                    method=method.upper(),
                    path=path,
                    operation_id=spec["operationId"],
                    summary=spec.get("summary", ""),
                    description=spec.get("description", ""),
                    tags=spec.get("tags", []),
                    security=_security(spec.get("security", document.get("security", []))),
                    parameters=[_parameter(_resolve(document, p)) for p in spec.get("parameters", [])],
                    request_bodies=_bodies(body.get("content", {})),
                    answers=[_answer(document, status, r) for status, r in spec.get("responses", {}).items()],
                )
            )
    return found


def _security(requirements: list[dict[str, list[str]]]) -> list[str]:
    """``['officeToken']``, or ``['none', 'partnerToken']`` when a scheme is optional."""
    return [" + ".join(requirement) or "none" for requirement in requirements]


def _parameter(spec: dict[str, Any]) -> Parameter:
    schema = spec.get("schema", {})
    return Parameter(spec["name"], spec["in"], bool(spec.get("required")), spec.get("description", ""), _block(schema))


def _answer(document: dict[str, Any], status: str, spec: dict[str, Any]) -> Answer:
    resolved = _resolve(document, spec)
    return Answer(
        status=status,
        description=resolved.get("description", ""),
        headers=list(resolved.get("headers", {})),
        bodies=_bodies(resolved.get("content", {})),
    )


def _bodies(content: dict[str, Any]) -> list[Block]:
    return [
        Block(media_type, _pretty(media.get("schema", {})), _refs(media.get("schema", {})))
        for media_type, media in content.items()
    ]


def _block(schema: dict[str, Any]) -> Block:
    return Block("", _pretty(schema), _refs(schema))


def _resolve(document: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """Follow a ``$ref`` to a shared component (parameters, responses, bodies)."""
    while "$ref" in spec:
        kind, name = spec["$ref"].removeprefix(REF_PREFIX).split("/", 1)
        spec = document["components"][kind][name]
    return spec


def _pretty(schema: Any) -> str:
    return json.dumps(schema, ensure_ascii=False, indent=2)


def _refs(schema: Any) -> list[str]:
    """The names of the component schemas ``schema`` refers to, in order of appearance."""
    names: list[str] = []
    if isinstance(schema, dict):
        target = schema.get("$ref")
        if isinstance(target, str) and target.startswith(REF_PREFIX + "schemas/"):
            names.append(target.removeprefix(REF_PREFIX + "schemas/"))
        for value in schema.values():
            names.extend(n for n in _refs(value) if n not in names)
    elif isinstance(schema, list):
        for value in schema:
            names.extend(n for n in _refs(value) if n not in names)
    return list(dict.fromkeys(names))
