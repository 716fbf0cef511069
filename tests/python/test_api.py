"""The Python package, installed from its wheel, against real servers."""

from __future__ import annotations

import http.server
import importlib.metadata
import inspect
import os
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import pyarrow as pa
import pytest

import vecport
from conftest import unique


def export_seeded(chroma, tmp_path, n=300, dim=16, **options):
    name = unique("py")
    records = chroma.seed(name, n, dim)
    snap = tmp_path / "snap"
    result = vecport.export(chroma.location(name), snap, **options)
    return name, records, snap, result


def test_export_read_import_compare(chroma, tmp_path):
    calls = []
    name, records, snap, result = export_seeded(
        chroma, tmp_path, progress=lambda c, done, total: calls.append((c, done, total))
    )
    assert result.command == "export"
    assert result.records == 300
    assert result.snapshot == str(snap)
    assert result.seconds > 0
    assert [c["name"] for c in result.collections] == [name]
    assert result.manifest["collections"][0]["record_count"] == 300
    # Progress: every record told, for the collection exported.
    assert calls, "the progress callback was never called"
    assert {c for c, _, _ in calls} == {name}
    assert calls[-1][1] == 300
    assert all(a[1] <= b[1] for a, b in zip(calls, calls[1:]))

    s = vecport.Snapshot(snap)
    assert s.collections == [name]
    assert s.manifest["collections"][0]["name"] == name
    report = s.verify(deep=True)
    assert report["ok"] and report["rows"] == 300 and report["decoded_rows"] == 300, report

    table = s.to_arrow()
    assert isinstance(table, pa.Table)
    assert table.num_rows == 300
    by_id = dict(zip(table.column("id").to_pylist(), range(table.num_rows)))
    assert set(by_id) == {r["id"] for r in records}
    vector_column = next(f.name for f in table.schema if pa.types.is_fixed_size_list(f.type) or pa.types.is_list(f.type))
    vectors = table.column(vector_column).to_pylist()
    for r in records:
        got = vectors[by_id[r["id"]]]
        # Chroma stores l2 vectors bit for bit; the snapshot holds float32.
        assert got == pa.array(r["embedding"], pa.float32()).to_pylist()
    assert table.column("document").to_pylist()[by_id["r5"]] == "document 5"

    reader = s.batches(batch_rows=64)
    assert isinstance(reader, pa.RecordBatchReader)
    sizes = [b.num_rows for b in reader]
    assert sum(sizes) == 300 and max(sizes) <= 64 and len(sizes) >= 5

    frame = s.to_pandas()
    assert frame.shape[0] == 300 and "id" in frame.columns
    polars_frame = s.to_polars()
    assert polars_frame.height == 300
    assert sorted(polars_frame["id"].to_list()) == sorted(by_id)

    copy = name + "-copy"
    imported = vecport.import_(snap, chroma.location(copy))
    assert imported.command == "import" and imported.records == 300
    assert imported.collections[0]["target"] == copy
    assert imported.collections[0]["target_count"] == 300

    same = vecport.compare(chroma.location(name), chroma.location(copy))
    assert same["equal"] is True, same
    assert vecport.compare(snap, chroma.location(copy))["equal"] is True


def test_compare_reports_differences_as_a_dict(chroma, tmp_path):
    name, _, snap, _ = export_seeded(chroma, tmp_path, n=40)
    other = unique("py-other")
    chroma.seed(other, 39, 16)
    report = vecport.compare(snap, chroma.location(other), max_ids=0)
    assert report["equal"] is False
    (c,) = report["collections"]
    assert c["missing"]["count"] == 1 and c["missing"]["ids"] == ["r39"]


def test_migrate_into_postgres(chroma, postgres, tmp_path):
    name = unique("py-mig")
    chroma.seed(name, 120, 8)
    table = name.replace("-", "_")
    via = tmp_path / "via"
    seen = []
    result = vecport.migrate(
        chroma.location(name),
        f"{postgres}/{table}",
        via=via,
        progress=lambda c, done, total: seen.append(done),
    )
    assert result.command == "migrate" and result.records == 120
    assert result.snapshot == str(via)
    assert vecport.Snapshot(via).verify()["ok"]
    assert seen and max(seen) == 120
    assert vecport.compare(via, f"{postgres}/{table}")["equal"] is True


def test_import_refuses_an_existing_target_like_the_cli(chroma, tmp_path):
    name, _, snap, _ = export_seeded(chroma, tmp_path, n=10)
    with pytest.raises(vecport.Error) as raised:
        vecport.import_(snap, chroma.location(name))
    cli = subprocess.run(
        ["vecport", "import", str(snap), chroma.location(name)], capture_output=True, text=True
    )
    assert raised.value.exit_code == cli.returncode != 0
    assert name in str(raised.value)
    # if_exists takes the command line's values.
    assert vecport.import_(snap, chroma.location(name), if_exists="append").records == 10


def cli_code(*args):
    return subprocess.run(["vecport", *args], capture_output=True, text=True).returncode


def test_errors_are_the_classes_of_the_exit_codes(chroma, tmp_path):
    # A bad option value: usage (2), also a ValueError.
    with pytest.raises(vecport.UsageError) as e:
        vecport.export(chroma.location("x"), tmp_path / "a", page_size=0)
    assert e.value.exit_code == 2 == cli_code("export", chroma.location("x"), str(tmp_path / "a"), "--page-size", "0")
    assert isinstance(e.value, ValueError) and "page-size" in str(e.value)
    with pytest.raises(vecport.UsageError):
        vecport.import_(tmp_path, chroma.location("x"), if_exists="sometimes")

    # Nobody listens: connection (4), also the builtin ConnectionError.
    dead = "chroma://127.0.0.1:9/x"
    with pytest.raises(vecport.ConnectionError) as e:
        vecport.export(dead, tmp_path / "b", retries=0)
    assert isinstance(e.value, ConnectionError)
    assert e.value.exit_code == 4 == cli_code("--retries", "0", "export", dead, str(tmp_path / "b"))

    # A collection that is not there: not found (6).
    missing = chroma.location(unique("py-missing"))
    with pytest.raises(vecport.NotFoundError) as e:
        vecport.export(missing, tmp_path / "c")
    assert e.value.exit_code == 6 == cli_code("export", missing, str(tmp_path / "d"))

    # A damaged snapshot: snapshot (3).
    _, _, snap, _ = export_seeded(chroma, tmp_path, n=5)
    manifest = snap / "manifest.json"
    manifest.write_bytes(manifest.read_bytes().replace(b'"record_count"', b'"record_kount"', 1))
    with pytest.raises(vecport.SnapshotError) as e:
        vecport.Snapshot(snap)
    assert e.value.exit_code == 3 == cli_code("inspect", str(snap))
    assert "manifest.json" in str(e.value)

    # A collection the snapshot lacks.
    _, _, good, _ = export_seeded(chroma, tmp_path / "good", n=5)
    with pytest.raises(vecport.NotFoundError, match="no collection `nope`"):
        vecport.Snapshot(good).batches("nope")


def test_progress_callback_exception_is_raised(chroma, tmp_path):
    name = unique("py-cb")
    chroma.seed(name, 50, 4)

    def fail(collection, done, total):
        raise KeyError("stop here")

    with pytest.raises(KeyError, match="stop here"):
        vecport.export(chroma.location(name), tmp_path / "s", progress=fail)


class Proxy(http.server.BaseHTTPRequestHandler):
    """Forwards every request to Chroma: Python code that must run while a
    transfer is under way, which it can only if the transfer released the GIL."""

    upstream = ""
    protocol_version = "HTTP/1.1"

    def forward(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else None
        request = urllib.request.Request(self.upstream + self.path, data=body, method=self.command)
        for key in ("content-type", "accept"):
            if self.headers.get(key):
                request.add_header(key, self.headers[key])
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status, headers, payload = response.status, response.headers, response.read()
        except urllib.error.HTTPError as e:
            status, headers, payload = e.code, e.headers, e.read()
        self.send_response(status)
        self.send_header("content-type", headers.get("content-type", "application/json"))
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = forward

    def log_message(self, *args):
        pass


def test_transfers_release_the_gil(chroma, tmp_path):
    name = unique("py-gil")
    chroma.seed(name, 200, 8)
    Proxy.upstream = chroma.url
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        via_proxy = f"chroma://127.0.0.1:{server.server_address[1]}/{name}"
        # Held, the GIL would stop the proxy from answering: the request would time out.
        result = vecport.export(via_proxy, tmp_path / "s", timeout=20, retries=0)
        assert result.records == 200
        assert vecport.compare(via_proxy, tmp_path / "s", timeout=20, retries=0)["equal"] is True
    finally:
        server.shutdown()


def keyword_options(function):
    return {
        p.name.replace("_", "-")
        for p in inspect.signature(function).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name != "progress"
    }


@pytest.mark.parametrize(
    "command,function",
    [("export", vecport.export), ("import", vecport.import_), ("migrate", vecport.migrate), ("compare", vecport.compare)],
)
def test_every_cli_option_has_its_keyword(command, function):
    from vecport import _native

    options = set(_native.long_options(command))
    assert {"retries", "timeout"} <= options  # the global ones are there too
    # `compare --json`: the function always returns the report as a dict.
    options.discard("json")
    assert keyword_options(function) == options


def test_cli_entry_point_from_the_wheel(chroma, tmp_path):
    exe = shutil.which("vecport")
    assert exe and os.path.dirname(exe) == os.path.dirname(sys.executable), exe
    version = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True).stdout
    assert version.split() == ["vecport", vecport.__version__]
    # The wheel's version (python/Cargo.toml) is the crate's.
    assert importlib.metadata.version("vecport") == vecport.__version__
    _, _, snap, _ = export_seeded(chroma, tmp_path, n=20)
    out = subprocess.run([exe, "verify", str(snap)], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("ok:"), out
    bad = subprocess.run([exe, "export"], capture_output=True, text=True)
    assert bad.returncode == 2 and "Usage: vecport export" in bad.stderr
    assert cli_code("verify", str(tmp_path / "none")) != 0


def test_a_snapshot_is_an_arrow_stream(chroma, tmp_path):
    import polars as pl

    _, _, snap, _ = export_seeded(chroma, tmp_path, n=30)
    assert pa.table(vecport.Snapshot(snap)).num_rows == 30
    assert pl.DataFrame(vecport.Snapshot(snap)).height == 30
    stream = vecport._native.NativeSnapshot(str(snap)).stream()
    stream.__arrow_c_stream__()
    with pytest.raises(vecport.UsageError, match="consumed"):
        stream.__arrow_c_stream__()
