"""Kibana's API as recorded in tests/data/kibana-contract.json (from Kibana 9's documentation;
no Kibana runs here): `check` holds one request to it, and `ContractKibana` is a scripted
Kibana that checks every request it gets and answers as the documentation says."""

from __future__ import annotations

import email.parser
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import jsonschema
import orjson

CONTRACT: dict[str, Any] = orjson.loads(
    (Path(__file__).resolve().parent / "data" / "kibana-contract.json").read_bytes()
)
SPACE_ID = re.compile(r"[a-z0-9_-]+")


def _validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({**schema, "definitions": CONTRACT["definitions"]})


def _match(template: str, path: str) -> dict[str, str] | None:
    names = re.findall(r"\{(\w+)\}", template)
    pattern = re.escape(template)
    for name in names:
        pattern = pattern.replace(re.escape(f"{{{name}}}"), f"(?P<{name}>[^/]+)")
    found = re.fullmatch(pattern, path)
    return None if found is None else {k: unquote(v) for k, v in found.groupdict().items()}


def check(request: httpx.Request) -> tuple[str, dict[str, Any]]:
    """The operation `request` is and what it carries (`space`, path parameters, `body`);
    an AssertionError saying what in it the contract does not allow."""
    path = request.url.path
    space = None
    if found := re.fullmatch(r"/s/([^/]+)(/api/.*)", path):
        space, path = unquote(found[1]), found[2]
    matches = [
        (name, operation, parameters)
        for name, operation in CONTRACT["operations"].items()
        if operation["method"] == request.method
        and (parameters := _match(operation["path"], path)) is not None
    ]
    assert len(matches) == 1, f"no documented operation is {request.method} {request.url.path}"
    ((name, operation, parameters),) = matches
    if space is not None:
        assert operation["in_a_space"], f"{name} has no /s/<space> form"
        assert SPACE_ID.fullmatch(space), f"{name}: space id {space!r}"
    for parameter, pattern in operation["path_parameters"].items():
        assert re.fullmatch(pattern, parameters[parameter]), f"{name}: {parameter}"
    for header in operation["headers"]:
        assert request.headers.get(header), f"{name} needs the {header} header"
    query = dict(request.url.params)
    for key, value in query.items():
        assert operation["query"].get(key) == "boolean", f"{name}: query parameter {key}"
        assert value in ("true", "false"), f"{name}: {key}={value!r} is not a boolean"
    for pair in operation.get("query_exclusive", []):
        assert not all(query.get(key) == "true" for key in pair), f"{name}: {pair} together"
    body = _body(name, operation, request)
    if operation["body"] is not None:
        schema = _validator(operation["body"])
        for document in body if isinstance(body, list) else [body]:
            errors = [e.message for e in schema.iter_errors(document)]
            assert not errors, f"{name}: the body breaks the contract: {errors}"
    if field := operation.get("path_parameter_is_body_field"):
        assert body[field] == parameters[field], f"{name}: {field} of path and body differ"
    return name, {"space": space, "body": body, **parameters}


def _body(name: str, operation: dict[str, Any], request: httpx.Request) -> Any:
    content = request.read()
    kind = operation["content_type"]
    if kind is None:
        assert not content, f"{name} takes no body"
        return None
    content_type = request.headers.get("content-type", "")
    assert content_type.split(";")[0].strip() == kind, f"{name}: content type {content_type!r}"
    if kind == "application/json":
        return orjson.loads(content)
    message = email.parser.BytesParser().parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + content
    )
    files = [
        part
        for part in message.get_payload()
        if part.get_param("name", header="content-disposition") == operation["form_file"]
    ]
    assert len(files) == 1, f"{name} needs one form field {operation['form_file']!r}"
    assert files[0].get_param("filename", header="content-disposition"), f"{name}: file name"
    data = files[0].get_payload(decode=True)
    return [orjson.loads(line) for line in data.splitlines() if line.strip()]


class ContractKibana:
    """A scripted Kibana: spaces, saved objects per space and roles, kept in memory. Every
    request is checked against the contract first (`requests` lists the operations seen)."""

    def __init__(self) -> None:
        self.spaces: dict[str, dict[str, Any]] = {
            "default": {"id": "default", "name": "Default", "_reserved": True}
        }
        self.objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {"default": {}}
        self.roles: dict[str, dict[str, Any]] = {}
        self.requests: list[str] = []

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        name, parts = check(request)
        self.requests.append(name)
        return getattr(self, name.replace("-", "_"))(parts)

    def get_spaces_space_id(self, parts: dict[str, Any]) -> httpx.Response:
        space = self.spaces.get(parts["id"])
        return httpx.Response(404) if space is None else httpx.Response(200, json=space)

    def post_spaces_space(self, parts: dict[str, Any]) -> httpx.Response:
        body = {"disabledFeatures": [], **parts["body"]}
        if body["id"] in self.spaces:
            return httpx.Response(409, json={"message": "exists"})
        self.spaces[body["id"]] = body
        self.objects[body["id"]] = {}
        return httpx.Response(200, json=body)

    def put_spaces_space_id(self, parts: dict[str, Any]) -> httpx.Response:
        if parts["id"] not in self.spaces:
            return httpx.Response(404)
        self.spaces[parts["id"]] = {"disabledFeatures": [], **parts["body"]}
        return httpx.Response(200, json=self.spaces[parts["id"]])

    def post_saved_objects_import(self, parts: dict[str, Any]) -> httpx.Response:
        space = parts["space"] or "default"
        if space not in self.spaces:
            return httpx.Response(404, json={"message": f"space {space} not found"})
        stored = self.objects[space]
        results = []
        for entry in parts["body"]:
            key = (entry["type"], entry["id"])
            result = {"type": entry["type"], "id": entry["id"], "meta": {}}
            if key in stored:
                result["overwrite"] = True
            stored[key] = entry
            results.append(result)
        count = len(results)
        return httpx.Response(
            200, json={"success": True, "successCount": count, "successResults": results}
        )

    def get_security_role_name(self, parts: dict[str, Any]) -> httpx.Response:
        role = self.roles.get(parts["name"])
        if role is None:
            return httpx.Response(404)
        elasticsearch = role["elasticsearch"]
        # As Kibana gives a role back: every part filled in.
        return httpx.Response(
            200,
            json={
                "name": parts["name"],
                **({"description": role["description"]} if "description" in role else {}),
                "metadata": role.get("metadata", {}),
                "transient_metadata": {"enabled": True},
                "elasticsearch": {
                    "cluster": elasticsearch.get("cluster", []),
                    "indices": elasticsearch.get("indices", []),
                    "run_as": elasticsearch.get("run_as", []),
                },
                "kibana": [
                    {
                        "base": entry.get("base", []),
                        "feature": entry.get("feature", {}),
                        "spaces": entry.get("spaces", ["*"]),
                    }
                    for entry in role.get("kibana", [])
                ],
                "_transform_error": [],
                "_unrecognized_applications": [],
            },
        )

    def put_security_role_name(self, parts: dict[str, Any]) -> httpx.Response:
        self.roles[parts["name"]] = parts["body"]
        return httpx.Response(204)
