"""The model API's reference (docs/api.md), written from its OpenAPI document, so the two cannot
drift apart (a test compares them).

    python -m crispml.serving.reference > docs/api.md
"""

from __future__ import annotations

import json
from typing import Any, cast

HEADER = """# Model API reference

Generated from the OpenAPI document of `crispml serve` (also served live at `/docs` and
`/openapi.json`, and under `/api/` of the web app) by `python -m crispml.serving.reference`;
a test keeps this file equal to it. The user guide's Deployment section shows it in use, and
docs/reference.md lists the settings that bound it.

Every route but `/healthz` and `/readyz` needs an API key, as `Authorization: Bearer cml_...` or
`X-API-Key: cml_...`, unless the model's deployment is public. Errors are JSON
`{"detail": "..."}`: 400 bad input (the message names the item), 401 no valid key, 403 a key not
allowed that model, 404 unknown model, weight or algorithm, 413 too large, 504 too slow, 500 with
a `request_id` for anything unexpected.
"""


def document() -> dict[str, Any]:
    from crispml.serving.api import ModelApi
    from crispml.serving.app import create_api

    # The routes do not depend on the services; only the examples would (none are loaded).
    api = ModelApi(cast(Any, None))
    return create_api(api).openapi()


def _schema(schema: dict[str, Any]) -> str:
    if "oneOf" in schema:
        return " or ".join(_schema(s) for s in schema["oneOf"])
    kind = schema.get("type", "any")
    if isinstance(kind, list):
        kind = " or ".join(kind)
    if kind == "array":
        return f"array of {_schema(schema.get('items', {}))}"
    if kind == "object" and schema.get("properties"):
        return "object"
    if schema.get("format") == "binary":
        return "file"
    if "enum" in schema:
        return " or ".join(f"`{v}`" for v in schema["enum"])
    return str(kind)


def markdown(doc: dict[str, Any] | None = None) -> str:
    doc = doc or document()
    out = [HEADER]
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            out.append(f"## `{method.upper()} {path}`\n")
            text = (operation.get("description") or operation.get("summary") or "").strip()
            if text:
                out.append(" ".join(text.split()).replace("``", "`") + "\n")
            parameters = operation.get("parameters", [])
            if parameters:
                out.append("| query parameter | type | meaning |\n| --- | --- | --- |")
                for p in parameters:
                    meaning = " ".join((p.get("description") or "").split())
                    out.append(f"| `{p['name']}` | {_schema(p.get('schema', {}))} | {meaning} |")
                out.append("")
            body = operation.get("requestBody", {}).get("content", {})
            for media, content in body.items():
                schema = content.get("schema", {})
                variants = schema.get("oneOf", [schema])
                out.append(f"Body `{media}`:\n")
                out.append("| field | type |\n| --- | --- |")
                for variant in variants:
                    if variant.get("type") == "array":
                        out.append(f"| (the whole body) | {_schema(variant)} |")
                    for name, field in variant.get("properties", {}).items():
                        required = " (required)" if name in variant.get("required", []) else ""
                        out.append(f"| `{name}`{required} | {_schema(field)} |")
                out.append("")
            responses = operation.get("responses", {})
            out.append("| status | when |\n| --- | --- |")
            for code in sorted(responses):
                what = " ".join((responses[code].get("description") or "").split())
                out.append(f"| {code} | {what} |")
            out.append("")
    return "\n".join(out).rstrip() + "\n"


def routes(doc: dict[str, Any] | None = None) -> list[str]:
    """``METHOD /path`` of every operation."""
    doc = doc or document()
    return [f"{m.upper()} {p}" for p, ops in doc["paths"].items() for m in ops]


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--json"]:
        print(json.dumps(document(), indent=1))
    else:
        sys.stdout.write(markdown())
