"""Writes manifest.json and manifest.json.blake3 for one collection whose
parts are already written (spec/FORMAT.md §3, §5, §10).

    write_manifest(root, name, records, dimension, metric, parts)

`records` are the records written, as dicts with the keys of the part's
columns ("id", "namespace", "metadata" as JSON text, "document", "uri",
"vector"); `parts` are the part file names under collections/<name>/, in
record order, with their row counts. Needs the `blake3` package.
"""

import json
import os
from collections import Counter
from datetime import datetime, timezone

import blake3


def value_type(v):
    """The type name of a metadata value (§3.3)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    if isinstance(v, dict):
        return "object"
    return "array<" + "|".join(sorted({value_type(x) for x in v})) + ">"


def blake3_file(path):
    h = blake3.blake3()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def write_manifest(root, name, records, dimension, metric, parts):
    directory = f"collections/{name}"  # `name` must be a valid directory name (§2.2)
    fields, with_metadata = {}, 0
    for r in records:
        if r["metadata"] is None:
            continue
        with_metadata += 1
        for key, value in json.loads(r["metadata"]).items():
            stats = fields.setdefault(key, {"present": 0, "types": Counter()})
            stats["present"] += 1
            stats["types"][value_type(value)] += 1
    namespaces = Counter(r["namespace"] for r in records)
    manifest = {
        "format": "vecport.snapshot",
        "format_version": "1.0",
        "producer": {"name": "vecport-recipe", "version": "1"},
        "created_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "source": {"kind": "recipe"},
        "collections": [{
            "name": name,
            "directory": directory,
            "record_count": len(records),
            "namespaces": [{"name": n, "records": namespaces[n]}
                           for n in sorted(namespaces, key=lambda n: (n is not None, n or ""))],
            "id_kind": "string",
            "vectors": [{"name": "", "kind": "dense", "dimension": dimension,
                         "metric": metric, "column": "vector"}],
            "metadata_schema": {
                "records_with_metadata": with_metadata,
                "fields": {k: {"present": s["present"], "types": dict(sorted(s["types"].items()))}
                           for k, s in sorted(fields.items())},
            },
            "has_documents": any(r["document"] is not None for r in records),
            "has_uris": any(r["uri"] is not None for r in records),
            "parts": [{"path": p, "rows": rows,
                       "bytes": os.path.getsize(f"{root}/{directory}/{p}"),
                       "blake3": blake3_file(f"{root}/{directory}/{p}")}
                      for p, rows in parts],
        }],
    }
    # UTF-8, not \u escapes (§1); the checksum file first, the manifest last (§5).
    text = (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    with open(f"{root}/manifest.json.blake3", "w") as f:
        f.write(f"{blake3.blake3(text).hexdigest()}  manifest.json\n")
    with open(f"{root}/manifest.json.tmp", "wb") as f:
        f.write(text)
    os.replace(f"{root}/manifest.json.tmp", f"{root}/manifest.json")
