"""Tables brought in are bounded before they are read: a Parquet file or an Excel workbook a
thousand times smaller than what it unpacks to is refused from its metadata, in a process whose
peak memory stays near its start (measured from outside, in a fresh process)."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crispml.core.data.loaders import TableLimits, read_table
from crispml.core.errors import InvalidInput

READ = r"""
import json, resource, sys
from pathlib import Path
from crispml.core.data.loaders import TableLimits, read_table
from crispml.core.errors import InvalidInput
import pandas, pyarrow.parquet, openpyxl  # imported before the baseline
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    read_table(Path(sys.argv[1]), TableLimits(max_rows=1_000_000, max_columns=100, max_mb=50))
    outcome = "read"
except InvalidInput as exc:
    outcome = str(exc)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"outcome": outcome, "grew_mb": (after - before) / 1024}))
"""


def parquet_bomb(path: Path, rows: int) -> None:
    zeros = pa.table({"x": pa.array([0] * 1_000_000, type=pa.int64())})
    with pq.ParquetWriter(path, zeros.schema, compression="zstd") as writer:
        for _ in range(rows // 1_000_000):
            writer.write_table(zeros)


def excel_bomb(path: Path, megabytes: int) -> None:
    """A workbook whose one sheet's XML is ``megabytes`` MB of cells, deflated."""
    row = "<row>" + "<c><v>0</v></c>" * 1000 + "</row>"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("xl/worksheets/sheet1.xml", "w") as sheet:
            sheet.write(b"<worksheet><sheetData>")
            chunk = (row * 64).encode()
            for _ in range(megabytes * 1_000_000 // len(chunk)):
                sheet.write(chunk)
            sheet.write(b"</sheetData></worksheet>")


def measured(path: Path) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", READ, str(path)],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("kind", ["parquet", "excel"])
def test_a_table_bomb_is_refused_before_it_is_read(tmp_path: Path, kind: str) -> None:
    if kind == "parquet":
        path = tmp_path / "bomb.parquet"
        parquet_bomb(path, 20_000_000)  # 160 MB of int64 once read
        unpacked = 160
    else:
        path = tmp_path / "bomb.xlsx"
        excel_bomb(path, 120)
        unpacked = 120
    small = path.stat().st_size
    assert small * 100 < unpacked * 1_000_000  # over a hundred times smaller (parquet: 1000x)
    found = measured(path)
    assert "more than" in str(found["outcome"]), found
    assert float(found["grew_mb"]) < 20, found  # nothing of it was unpacked
    print(f"\n{kind}: {small / 1e3:,.0f} KB file, {unpacked} MB unpacked, refused: {found}")


def test_columns_and_rows_are_counted(tmp_path: Path) -> None:
    wide = tmp_path / "wide.csv"
    wide.write_text(",".join(f"c{i}" for i in range(200)) + "\n" + ",".join("1" * 200) + "\n")
    with pytest.raises(InvalidInput, match="200 columns, more than 100"):
        read_table(wide, TableLimits(max_columns=100))
    assert read_table(wide).shape == (1, 200)
    long = tmp_path / "long.parquet"
    parquet_bomb(long, 2_000_000)
    with pytest.raises(InvalidInput, match="2,000,000 rows, more than 1,000,000"):
        read_table(long, TableLimits(max_rows=1_000_000))
