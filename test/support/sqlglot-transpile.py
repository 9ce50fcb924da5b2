"""Transpiles BigQuery statements to DuckDB with sqlglot (Debian's python3-sqlglot).

stdin: a JSON list of statements. stdout: a JSON list of {"sql": str|null, "error": str|null}.
"""
import json
import sys

import sqlglot

results = []
for sql in json.load(sys.stdin):
    try:
        out = sqlglot.transpile(sql, read="bigquery", write="duckdb")
        results.append({"sql": out[0] if len(out) == 1 else None, "error": None if len(out) == 1 else "not one statement"})
    except Exception as err:
        results.append({"sql": None, "error": str(err).splitlines()[0][:400]})
json.dump(results, sys.stdout)
