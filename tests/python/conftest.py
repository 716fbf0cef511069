"""Fixtures of the Python package's tests: run against the installed wheel
and the real servers of tests/servers.sh (CHROMA_URL, DATABASE_URL)."""

from __future__ import annotations

import json
import os
import random
import urllib.request
import uuid

import pytest

CHROMA_PREFIX = "/api/v2/tenants/default_tenant/databases/default_database"


def server_url(var: str) -> str:
    """The URL of a server the tests need; under CI=true its absence fails the test."""
    url = os.environ.get(var, "")
    if url:
        return url
    if os.environ.get("CI") == "true":
        pytest.fail(f"{var} is not set, but CI=true: .ci/run must start the server")
    pytest.skip(f"set {var} to run this test against a real server")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class Chroma:
    """A real Chroma server, written to through its REST API (not vecport)."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.host = self.url.split("://", 1)[-1]

    def call(self, method: str, path: str, body: object = None) -> object:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + CHROMA_PREFIX + path,
            data=data,
            method=method,
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            text = response.read()
        return json.loads(text) if text else None

    def seed(self, name: str, n: int, dim: int, seed: int = 7) -> list[dict]:
        """Creates collection `name` (l2) holding `n` records of dimension `dim`."""
        rng = random.Random(seed)
        cid = self.call("POST", "/collections", {"name": name, "configuration": {"hnsw": {"space": "l2"}}})["id"]
        records = [
            {
                "id": f"r{i}",
                "embedding": [rng.uniform(-1, 1) for _ in range(dim)],
                "metadata": {"i": i, "tag": "even" if i % 2 == 0 else "odd"},
                "document": f"document {i}",
            }
            for i in range(n)
        ]
        for start in range(0, n, 500):
            chunk = records[start : start + 500]
            self.call(
                "POST",
                f"/collections/{cid}/upsert",
                {
                    "ids": [r["id"] for r in chunk],
                    "embeddings": [r["embedding"] for r in chunk],
                    "metadatas": [r["metadata"] for r in chunk],
                    "documents": [r["document"] for r in chunk],
                },
            )
        return records

    def location(self, name: str) -> str:
        return f"chroma://{self.host}/{name}"


@pytest.fixture
def chroma() -> Chroma:
    return Chroma(server_url("CHROMA_URL"))


@pytest.fixture
def postgres() -> str:
    """The pgvector URL of the test PostgreSQL server."""
    url = server_url("DATABASE_URL")
    return "pgvector://" + url.split("://", 1)[1]
