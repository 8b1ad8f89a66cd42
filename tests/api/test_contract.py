"""The HTTP API as a contract: the document the server publishes is valid OpenAPI 3.1, complete (every
schema it refers to, every status an operation answers with the one error model, examples), and the
server keeps it: schemathesis, with all of its checks and all of its phases, valid and invalid
requests (JSON and multipart uploads alike), finds no failure against the real uvicorn server.

Schemathesis runs as its command-line tool would for a user, against the key-protected server, so
its authentication checks (a declared-secure operation must refuse a request without the key) run
too. It is bounded for the suite: a fixed seed, deterministic generation, few fuzzing examples per
operation, and the coverage phase sampled at a fixed stride (`tests/api/contract_hooks.py`); the
whole coverage phase takes minutes and is a release check:

    schemathesis run http://127.0.0.1:8000/openapi.json --checks all -H "Authorization: Bearer KEY"
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
from openapi_spec_validator import validate

from .conftest import API_KEY

REPO = Path(__file__).resolve().parents[2]
OPERATIONS = {("post", "/search/text"), ("post", "/search/audio"), ("get", "/clips/{clip_id}"),
              ("get", "/clips/{clip_id}/audio"), ("post", "/classify"), ("post", "/similarity"),
              ("post", "/export"), ("get", "/collection"), ("get", "/health")}


def _document(server) -> dict:
    return httpx.get(f"{server.url}/openapi.json", timeout=30).json()


def _refs(node) -> set[str]:
    if isinstance(node, dict):
        return ({node["$ref"]} if isinstance(node.get("$ref"), str) else set()) | {
            r for v in node.values() for r in _refs(v)}
    if isinstance(node, list):
        return {r for v in node for r in _refs(v)}
    return set()


def test_the_document_is_valid_and_complete(keyed) -> None:
    doc = _document(keyed)
    validate(doc)  # openapi-spec-validator: OpenAPI 3.1 and its JSON Schema dialect
    assert doc["openapi"].startswith("3.1")
    schemas = doc["components"]["schemas"]
    assert {f"#/components/schemas/{name}" for name in schemas} >= _refs(doc), "a reference leads nowhere"
    assert not {"HTTPValidationError", "ValidationError"} & set(schemas), "FastAPI's error models are never sent"
    operations = {(m, p): op for p, item in doc["paths"].items() for m, op in item.items()}
    assert set(operations) == OPERATIONS
    error = {"$ref": "#/components/schemas/ErrorOut"}
    for (method, path), op in operations.items():
        codes = {int(c) for c in op["responses"]}
        for code in codes - {200, 206}:
            assert op["responses"][str(code)]["content"]["application/json"]["schema"] == error, (path, code)
        if "requestBody" in op:
            assert codes >= {400, 413, 415, 422}, (path, codes)
            body = op["requestBody"]["content"]
            assert body["application/json"].get("examples"), f"{method} {path} shows no example"
            for example in body["application/json"]["examples"].values():
                assert example["value"]
        if path == "/health":
            assert op["security"] == [] and 401 not in codes
        else:
            assert op["security"] == [{"bearerKey": []}] and 401 in codes
        if "clip_id" in path:
            assert op["parameters"][0]["schema"]["examples"] == [0]
    # Operations that read a body by hand declare both of their forms, by reference to real schemas.
    for path, json_model, form_model in (("/search/audio", "ClipSearchRequest", "AudioSearchForm"),
                                         ("/classify", "ClassifyRequest", "ClassifyForm"),
                                         ("/similarity", "SimilarityRequest", "SimilarityForm")):
        content = doc["paths"][path]["post"]["requestBody"]["content"]
        assert content["application/json"]["schema"]["$ref"].endswith(json_model)
        assert content["multipart/form-data"]["schema"]["$ref"].endswith(form_model)
        assert json_model in schemas and form_model in schemas
        # A form field holds text: null cannot be sent, so a field that is not JSON text never admits it
        # (a schema-valid form with voice_weight null was once refused with a 422).
        encoded_as_json = set(content["multipart/form-data"].get("encoding", {}))
        for name, prop in schemas[form_model]["properties"].items():
            if name not in encoded_as_json:
                assert {"type": "null"} not in prop.get("anyOf", []), (form_model, name)
    # The collection's own columns are named, each with the operators its type takes.
    assert "duration" in schemas["NumberColumn"]["enum"] and "gender" in schemas["TextColumn"]["enum"]
    assert schemas["NumberBetween"]["properties"]["op"] == {"enum": ["between"]}
    assert doc["components"]["securitySchemes"]["bearerKey"] == {
        "type": "http", "scheme": "bearer", "description": "The server's API key, sent as `Authorization: Bearer KEY`."}


def test_without_keys_the_document_declares_no_security(server) -> None:
    doc = _document(server)
    validate(doc)
    assert "securitySchemes" not in doc["components"]
    assert all("security" not in op and "401" not in op["responses"]
               for item in doc["paths"].values() for op in item.values())


def test_schemathesis_finds_no_contract_failure(keyed, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    env = {**os.environ, "CLSP_CONTRACT_COVERAGE_EVERY": "15", "NO_COLOR": "1", "COLUMNS": "200"}
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{keyed.url}/openapi.json",
        "--checks", "all", "--phases", "examples,coverage,fuzzing,stateful", "--mode", "all",
        "--header", f"Authorization: Bearer {API_KEY}",
        "--max-examples", "6", "--seed", "20240501", "--generation-deterministic",
        "--request-timeout", "60", "--report", "json", "--report-json-path", str(report),
    ]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert report.is_file(), done.stdout[-4000:] + done.stderr[-4000:]
    result = json.loads(report.read_text())
    assert result["failures"] == [] and result["errors"] == [], done.stdout[-6000:]
    assert done.returncode == 0, done.stdout[-6000:]
    assert result["operations"]["tested"] == len(OPERATIONS) == result["operations"]["total"]
    assert {name: p["status"] for name, p in result["phases"].items()} == {
        "examples": "success", "coverage": "success", "fuzzing": "success", "stateful": "success"}, result["phases"]
    # Guards against a run that silently sent little: hundreds of cases, valid ones accepted by every
    # operation that takes input, and the uploads among them (the hooks' WAV files).
    assert result["test_cases"]["generated"] >= 500, result["test_cases"]
    rates = result["valid_rates"]
    for label in ("POST /search/text", "POST /search/audio", "POST /classify", "POST /similarity", "POST /export"):
        assert sum(phase["accepted"] for phase in rates[label].values()) > 0, (label, rates[label])
    print(f"schemathesis: {result['test_cases']['generated']} cases, {len(result['failures'])} failures, "
          f"{result['running_time']:.1f} s")
