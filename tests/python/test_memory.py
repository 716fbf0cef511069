"""Reading a large snapshot keeps memory bounded: batches are decoded as they
are consumed and handed to pyarrow without copies."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROWS = 1_000_000
DIM = 128
CHUNK = 50_000

# Peak RSS from VmHWM: unlike getrusage's ru_maxrss, it starts afresh at
# exec, so the test process's own memory is not counted.
READ = """
import sys, vecport
rows = 0
for batch in vecport.Snapshot(sys.argv[1]).batches():
    rows += batch.num_rows
    # Touch every vector value, as a consumer would.
    batch.column(batch.schema.get_field_index(sys.argv[2])).values.to_numpy().sum()
peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(rows, peak // 1024)
"""


def test_batches_of_a_large_snapshot_stay_in_bounded_memory(tmp_path):
    source = tmp_path / "vectors.parquet"
    rng = np.random.default_rng(3)
    schema = pa.schema([("id", pa.string()), ("emb", pa.list_(pa.float32(), DIM))])
    with pq.ParquetWriter(source, schema) as writer:
        for start in range(0, ROWS, CHUNK):
            values = pa.array(rng.standard_normal(CHUNK * DIM, dtype=np.float32))
            ids = pa.array([str(i) for i in range(start, start + CHUNK)])
            writer.write_table(pa.table({"id": ids, "emb": pa.FixedSizeListArray.from_arrays(values, DIM)}, schema=schema))
    snap = tmp_path / "snap"
    subprocess.run(["vecport", "-q", "convert", str(source), str(snap), "--metric", "l2"], check=True)
    source.unlink()
    data_mib = ROWS * DIM * 4 >> 20  # 488 MiB of vectors

    out = subprocess.run([sys.executable, "-c", READ, str(snap), "vector"], capture_output=True, text=True, check=True)
    rows, peak_mib = map(int, out.stdout.split())
    assert rows == ROWS
    # Python, pyarrow and vecport's code take about 100 MiB; a batch of 16,384
    # rows of 128 float32 is 8 MiB. Holding the vectors would take 488 MiB more.
    assert peak_mib < 250 < data_mib, f"peak RSS {peak_mib} MiB reading {data_mib} MiB of vectors"
