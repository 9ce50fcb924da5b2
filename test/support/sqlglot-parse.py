"""Parses SQL statements with sqlglot's BigQuery dialect (Debian's python3-sqlglot).

stdin: a JSON list of statements. stdout: a JSON list of {"ok": bool, "error": str|null}, one per
statement. A statement sqlglot cannot parse, or only swallows as an opaque Command, is not ok.
"""
import json
import sys

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel

results = []
for sql in json.load(sys.stdin):
    try:
        trees = sqlglot.parse(sql, read="bigquery", error_level=ErrorLevel.RAISE)
        opaque = [t for t in trees if t is None or isinstance(t, exp.Command)]
        if not trees or opaque:
            results.append({"ok": False, "error": "not parsed as SQL (an opaque command)"})
        else:
            results.append({"ok": True, "error": None})
    except Exception as err:  # sqlglot raises ParseError / TokenError
        results.append({"ok": False, "error": str(err).splitlines()[0][:400]})
json.dump(results, sys.stdout)
