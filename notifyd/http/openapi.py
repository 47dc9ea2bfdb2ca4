"""GET /openapi.json: the OpenAPI 3.1 contract of every route the app serves (each listener's
app its own: the public one's leaves the admin API out); beside it,
GET /export.schema.json, the JSON Schema of an account's export (storage/export.py).

Written from the app's router: each route's Operation (http/operations.py) says what it
is for and names the pydantic models that read its request and write its answers, and the
JSON schemas come from those models, generated together (`TypeAdapter.json_schemas`) so
that each model is one entry of components/schemas. Nothing here is typed by hand but the
words; a route without an Operation cannot be served with the document.
"""

from __future__ import annotations

import json
import re
import weakref
from collections.abc import Iterator, Sequence
from typing import Any

from aiohttp import web
from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import JsonSchemaMode

from notifyd import __version__
from notifyd.http.operations import Answer, Operation, Routes, served
from notifyd.storage import export

REF = "#/components/schemas/{model}"

routes = Routes()
# The export's schema is the admin API's: only on the admin listener.
schema_routes = Routes()


def document(app: web.Application) -> dict[str, Any]:
    operations = list(served(app))
    schemas = _Schemas(operations)
    paths: dict[str, dict[str, Any]] = {}
    for path, operation in operations:
        paths.setdefault(path, {})[operation.method.lower()] = _operation(path, operation, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "notifyd",
            "version": __version__,
            "description": "Signed webhooks in (Standard Webhooks), email notices out; the "
            "admin API manages subscribers and their notices.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "adminToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A token whose SHA-256 is in [admin.tokens]; each operation "
                    "names the scope the token needs (read, subscribers, broadcasts, privacy) "
                    "and answers 403 without it.",
                }
            },
            "schemas": schemas.components,
        },
    }


class _Schemas:
    """The schemas of every model the operations name. The models of path and query
    parameters are read for their properties (each becomes a parameter) and left out of
    the components."""

    def __init__(self, operations: Sequence[tuple[str, Operation]]) -> None:
        wanted: dict[tuple[int, JsonSchemaMode], TypeAdapter[Any]] = {}
        parameter_models = set()
        for path, operation in operations:
            for model, mode in _models(path, operation):
                wanted[(id(model), mode)] = TypeAdapter(model)
            for model in (operation.path_parameters, operation.query_parameters):
                if model is not None:
                    parameter_models.add(id(model))
        found, definitions = TypeAdapter.json_schemas(
            [(key, key[1], adapter) for key, adapter in wanted.items()], ref_template=REF
        )
        self._found = {key: schema for (key, _), schema in found.items()}
        self.components: dict[str, Any] = dict(sorted(definitions.get("$defs", {}).items()))
        self._parameters: dict[int, dict[str, Any]] = {}
        for key in parameter_models:
            name = self._found[(key, "validation")]["$ref"].rsplit("/", 1)[1]
            self._parameters[key] = self.components.pop(name)

    def of(self, model: Any, mode: JsonSchemaMode) -> dict[str, Any]:
        schema: dict[str, Any] = self._found[(id(model), mode)]
        return schema

    def parameters(self, model: type[BaseModel], where: str) -> Iterator[dict[str, Any]]:
        """One parameter `in` `where` per field of the model."""
        definition = self._parameters[id(model)]
        for name, described in definition["properties"].items():
            parameter: dict[str, Any] = {"name": name, "in": where}
            if where == "path" or name in definition.get("required", ()):
                parameter["required"] = True
            if "description" in described:
                parameter["description"] = described["description"]
            # The description is the parameter's; a default of null says only "optional".
            parameter["schema"] = {
                key: value
                for key, value in described.items()
                if key not in ("title", "description") and (key, value) != ("default", None)
            }
            yield parameter


def _models(path: str, operation: Operation) -> Iterator[tuple[Any, JsonSchemaMode]]:
    for model in (operation.body, operation.path_parameters, operation.query_parameters):
        if model is not None:
            yield model, "validation"
    for answer in operation.every_answer(path).values():
        if answer.body is not None:
            yield answer.body, "serialization"


def _operation(path: str, operation: Operation, schemas: _Schemas) -> dict[str, Any]:
    described: dict[str, Any] = {"summary": operation.summary}
    if operation.description:
        described["description"] = operation.description
    if operation.admin:
        # The scope as a role name, which OpenAPI 3.1 allows for a non-OAuth scheme, and in
        # words for readers and tools that show only the description.
        described["security"] = [{"adminToken": [operation.scope]}]
        needs = f"Needs an admin token with the `{operation.scope}` scope."
        described["description"] = (
            f"{operation.description}\n\n{needs}" if operation.description else needs
        )
    parameters = [
        *_path_parameters(path, operation, schemas),
        *(
            schemas.parameters(operation.query_parameters, "query")
            if operation.query_parameters
            else ()
        ),
        *(
            {"name": name, "in": "header", "required": True, "schema": {"type": "string"}}
            for name in operation.headers
        ),
    ]
    if parameters:
        described["parameters"] = parameters
    content: dict[str, Any] = {}
    if operation.body is not None:
        content["application/json"] = {"schema": schemas.of(operation.body, "validation")}
    content.update(
        {media: {"schema": dict(schema)} for media, schema in operation.other_bodies.items()}
    )
    if content:
        described["requestBody"] = (
            {"required": True, "content": content}
            if operation.body_required
            else {"content": content}
        )
    described["responses"] = {
        str(status): _answer(answer, schemas)
        for status, answer in sorted(operation.every_answer(path).items())
    }
    return described


def _path_parameters(
    path: str, operation: Operation, schemas: _Schemas
) -> Iterator[dict[str, Any]]:
    if operation.path_parameters is not None:
        yield from schemas.parameters(operation.path_parameters, "path")
        return
    for name in re.findall(r"\{(\w+)\}", path):
        yield {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _answer(answer: Answer, schemas: _Schemas) -> dict[str, Any]:
    described: dict[str, Any] = {"description": answer.description}
    if answer.media_type is not None:
        body = {} if answer.body is None else {"schema": schemas.of(answer.body, "serialization")}
        described["content"] = {answer.media_type: body}
    return described


# Written at the first request: the routes do not change once the app is served.
_written: weakref.WeakKeyDictionary[web.Application, str] = weakref.WeakKeyDictionary()


@routes.get("/openapi.json", "This document", answers={200: Answer("OpenAPI 3.1")})
async def serve(request: web.Request) -> web.Response:
    text = _written.get(request.app)
    if text is None:
        text = _written[request.app] = json.dumps(document(request.app))
    return web.json_response(text=text)


@schema_routes.get(
    "/export.schema.json",
    "The JSON Schema of an account's export",
    description="What GET /v1/admin/subscribers/{account_id}/export and `notifyd privacy "
    "export` write (JSON Schema 2020-12), written from the same models.",
    answers={200: Answer("JSON Schema", media_type="application/schema+json")},
)
async def serve_export_schema(request: web.Request) -> web.Response:
    return web.json_response(export.json_schema(), content_type="application/schema+json")
