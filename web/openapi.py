"""The HTTP API described as OpenAPI 3.1 (``GET /openapi.json``), and a page that reads it (``/docs``)."""

from __future__ import annotations

from typing import Any

from faust.web import Request, Response
from pydantic import BaseModel

from persona.agents.app import app
from persona.events import Event
from persona.rules import RuleSet
from persona.web.admin import ResetRequest
from persona.web.base import MAX_N, MAX_TEXT, ApiView
from persona.web.events import MAX_BATCH

__all__ = ["SPEC"]

ERROR = {"$ref": "#/components/schemas/Error"}
SCHEMAS: dict[str, Any] = {}  # of request bodies, from their pydantic models


def _model(model: type[BaseModel], prefix: str = "") -> dict:
    """A reference to the model's schema; its nested models are named ``prefix`` + their name."""
    schema = model.model_json_schema(ref_template=f"#/components/schemas/{prefix}{{model}}")
    SCHEMAS.update({prefix + name: sub for name, sub in schema.pop("$defs", {}).items()})
    SCHEMAS[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}
ITEMS = {"type": "object", "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}}}}


def _q(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _path(name: str, description: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1},
            "description": description}


N = _q("n", {"type": "integer", "minimum": 1, "maximum": MAX_N, "default": 10}, "how many items")
TEXT = {"type": "string", "minLength": 1, "maxLength": MAX_TEXT}
CATEGORY = _q("category", TEXT, "a fragrance family (woody...), concentration (Eau de Parfum...) or gender")


def _get(summary: str, params: list[dict], ok: dict, *errors: int) -> dict[str, Any]:
    responses = {"200": {"description": "OK", "content": {"application/json": {"schema": ok}}}}
    for code in errors:
        responses[str(code)] = {"description": {400: "bad parameter", 404: "not found",
                                                503: "starting: catalog not loaded yet"}[code],
                                "content": {"application/json": {"schema": ERROR}}}
    return {"get": {"summary": summary, "parameters": params, "responses": responses}}


ADMIN_RESPONSES = {
    "202": {"description": "accepted", "content": {"application/json": {"schema": {"type": "object"}}}},
    "401": {"description": "missing or wrong admin token", "content": {"application/json": {"schema": ERROR}}},
    "403": {"description": "admin endpoints disabled", "content": {"application/json": {"schema": ERROR}}}}

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "persona", "version": "0.1.0",
             "description": "Real-time perfume recommendations. Any worker answers for any user."},
    "paths": {
        "/recommendations/{user_id}": _get(
            "Recommendations for a shopper, with reasons",
            [_path("user_id", "the shopper"), N, _q("slot", TEXT, "where they are shown: home, product, cart..."),
             _q("item_id", TEXT, "the product page's item"), CATEGORY],
            {"$ref": "#/components/schemas/Recommendations"}, 400, 404, 503),
        "/items/{item_id}/related": _get("What goes with a product", [_path("item_id", "a catalog item"), N],
                                         ITEMS, 400, 404, 503),
        "/items/{item_id}": _get("A product", [_path("item_id", "a catalog item")],
                                 {"$ref": "#/components/schemas/Product"}, 404, 503),
        "/trending": _get("Trending items (event-time windows of the last hour)", [CATEGORY, N], ITEMS, 400, 503),
        "/catalog": _get("Search the catalog", [
            _q("q", TEXT, "text in brand, name or notes"), CATEGORY,
            _q("offset", {"type": "integer", "minimum": 0, "maximum": 1_000_000, "default": 0}, "first result"),
            _q("limit", {"type": "integer", "minimum": 1, "maximum": MAX_N, "default": 24}, "page size")],
            {"type": "object", "properties": {"total": {"type": "integer"},
                                              "items": {"type": "array", "items": {"$ref": "#/components/schemas/Product"}}}},
            400, 503),
        "/users/{user_id}": {
            **_get("A shopper's profile with intent and journey stage, for debugging",
                   [_path("user_id", "the shopper")], {"type": "object"}, 404),
            "delete": {"summary": "Delete everything about a shopper (admin token)", "security": [{"admin": []}],
                       "parameters": [_path("user_id", "the shopper")], "responses": ADMIN_RESPONSES}},
        "/rules": {
            **_get("The active rule set and the last rejected one", [], {"type": "object"}),
            "put": {"summary": "Validate and activate a rule set on every worker (admin token)",
                    "security": [{"admin": []}],
                    "requestBody": {"required": True, "content": {"application/json": {"schema": _model(RuleSet)}}},
                    "responses": {**ADMIN_RESPONSES, "400": {"description": "invalid rule set",
                                                             "content": {"application/json": {"schema": ERROR}}}}}},
        "/admin/reset": {"post": {
            "summary": "Start models afresh (versioned above the last) and/or zero the engagement counters (admin token)",
            "security": [{"admin": []}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": _model(ResetRequest)}}},
            "responses": {**ADMIN_RESPONSES, "400": {"description": "invalid request",
                                                     "content": {"application/json": {"schema": ERROR}}}}}},
        "/models": _get("Model versions and prequential figures", [], {"type": "object"}),
        "/stats": _get("Live figures of all workers (the dashboard's data)", [], {"type": "object"}),
        "/health": _get("Status of this worker", [], {"type": "object"}),
        "/health/live": _get("Liveness", [], {"type": "object"}),
        "/health/ready": {"get": {"summary": "Readiness: tables recovered, catalog and copies loaded",
                                  "responses": {"200": {"description": "ready"}, "503": {"description": "not yet"}}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {
            "200": {"description": "text exposition format", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/events": {"post": {
            "summary": f"Send up to {MAX_BATCH} events (validated like the stream)",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {"oneOf": [
                {"type": "object", "properties": {"events": {"type": "array", "minItems": 1, "maxItems": MAX_BATCH,
                                                             "items": {"$ref": "#/components/schemas/Event"}}},
                 "required": ["events"]},
                _model(Event, prefix="Event")]}}}},
            "responses": {"202": {"description": "all accepted", "content": {"application/json": {"schema": {
                "type": "object", "properties": {"accepted": {"type": "integer"}}}}}},
                          "400": {"description": "some or all rejected (the rest accepted); listed with reasons",
                                  "content": {"application/json": {"schema": ERROR}}},
                          "413": {"description": "body too large", "content": {"application/json": {"schema": ERROR}}}}}},
    },
    "components": {"securitySchemes": {"admin": {"type": "http", "scheme": "bearer"}}, "schemas": {
        "Error": {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]},
        "Item": {"type": "object", "properties": {
            "item_id": {"type": "string"}, "name": {"type": "string"}, "brand": {"type": "string"},
            "category": {"type": "string"}, "family": {"type": "string"}, "gender": {"type": "string"},
            "price": {"type": "number"}, "image": {"type": "string"}, "score": {"type": "number"},
            "reasons": {"type": "array", "items": {"type": "string"}}, "source": {"type": "string"}}},
        "Product": {"type": "object", "properties": {
            "item_id": {"type": "string"}, "name": {"type": "string"}, "brand": {"type": "string"},
            "notes": {"type": "array", "items": {"type": "string"}}, "price": {"type": "number"},
            "rating": {"type": "number"}, "reviews": {"type": "integer"}}},
        "Recommendations": {"type": "object", "required": ["user_id", "rec_id", "strategy", "fallback", "items"],
                            "properties": {
            "user_id": {"type": "string"},
            "rec_id": {"type": "string", "description": "Identifies the list; send it with the select_item or add_to_cart "
                       "that follows. The same question asked again while its answer is kept gets the same list "
                       "and rec_id (one impression)."},
            "strategy": {"type": "string"},
            "fallback": {"type": "boolean"}, "variant": {"type": "string"}, "intent": {"type": ["number", "null"]},
            "stage": {"type": ["string", "null"]}, "rules_fired": {"type": "array", "items": {"type": "string"}},
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}}}},
    }},
}
SPEC["components"]["schemas"].update(SCHEMAS)

DOCS = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>persona API</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;color:#222}
code{background:#f3f0ea;padding:0 .25em}section{border-top:1px solid #ddd;padding:.5rem 0}
.m{font-weight:700;text-transform:uppercase;margin-right:.5em}li{margin:.15rem 0}</style></head>
<body><h1>persona HTTP API</h1><p>Machine-readable: <a href="/openapi.json">/openapi.json</a></p><div id="api"></div>
<script>
fetch('/openapi.json').then(r => r.json()).then(spec => {
  const root = document.getElementById('api');
  for (const [path, ops] of Object.entries(spec.paths)) for (const [method, op] of Object.entries(ops)) {
    const s = document.createElement('section');
    const h = document.createElement('h3');
    h.innerHTML = '<span class="m"></span><code></code> ';
    h.querySelector('.m').textContent = method; h.querySelector('code').textContent = path;
    h.append(op.summary || '');
    const ul = document.createElement('ul');
    for (const p of op.parameters || []) {
      const li = document.createElement('li');
      li.textContent = `${p.name} (${p.in}${p.required ? ', required' : ''}): ${p.description || ''} ` +
        JSON.stringify(p.schema);
      ul.append(li);
    }
    const codes = document.createElement('p');
    codes.textContent = 'Responses: ' + Object.entries(op.responses).map(([c, r]) => `${c} ${r.description}`).join(' · ');
    s.append(h, ul, codes); root.append(s);
  }
});
</script></body></html>"""


@app.page("/openapi.json")
class OpenApiView(ApiView):
    async def get(self, request: Request) -> Response:
        return self.json(SPEC)


@app.page("/docs")
class DocsView(ApiView):
    async def get(self, request: Request) -> Response:
        return self.html(DOCS)
