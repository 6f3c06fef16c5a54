"""The embedded default (SQLite) shared by the web server and the worker: a transaction that
reads and then writes waits for another writer instead of failing with "database is locked",
and readers are never blocked by a writer (WAL)."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Two threads, each with its own connection: one holds a write transaction for 0.5 s; the
# other reads, then writes, in one transaction (the shape of every service: SELECT … then
# UPDATE) and a plain read runs meanwhile.
RACE = """
import json, threading, time
import django
django.setup()
from django.db import connection, transaction

def sql(statement, *params):
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchone()

sql("CREATE TABLE item (k TEXT PRIMARY KEY, v TEXT)")
sql("INSERT INTO item VALUES ('k', '0')")
holding = threading.Event()
result = {}

def writer():
    with transaction.atomic():
        sql("UPDATE item SET v = '1'")
        holding.set()
        time.sleep(0.5)
    connection.close()

def read_then_write():
    holding.wait()
    started = time.monotonic()
    try:
        with transaction.atomic():
            sql("SELECT v FROM item")
            sql("UPDATE item SET v = '2'")
        result["read_then_write"] = "ok"
    except Exception as exc:
        result["read_then_write"] = f"{type(exc).__name__}: {exc}"
    result["waited"] = time.monotonic() - started
    connection.close()

def reader():
    holding.wait()
    started = time.monotonic()
    sql("SELECT v FROM item")
    result["read_seconds"] = time.monotonic() - started
    connection.close()

threads = [threading.Thread(target=f) for f in (writer, read_then_write, reader)]
for t in threads: t.start()
for t in threads: t.join()
result["journal_mode"] = sql("PRAGMA journal_mode")[0]
result["final"] = sql("SELECT v FROM item")[0]
print(json.dumps(result))
"""


def run_race(tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'race.sqlite3'}",
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    done = subprocess.run(
        [sys.executable, "-c", RACE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_sqlite_read_then_write_waits_for_the_writer_instead_of_failing(tmp_path):
    result = run_race(tmp_path)
    assert result["read_then_write"] == "ok"
    assert result["final"] == "2"  # it ran after the writer, not instead of it
    assert result["waited"] < 5


def test_sqlite_uses_wal_so_readers_do_not_wait_for_a_writer(tmp_path):
    result = run_race(tmp_path)
    assert result["journal_mode"] == "wal"
    assert result["read_seconds"] < 0.4  # the writer holds its lock for 0.5 s
