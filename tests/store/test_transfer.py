"""`localbcc db export` / `db import`: every table, every column, exactly, from
SQLite to PostgreSQL and back; import only into an empty database, all or
nothing; auto-increment counters carried so ids are never reused."""
from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
import subprocess

import orjson
import pytest

from localbcc.clock import FakeClock
from localbcc.domain.instances import InstanceService
from localbcc.domain.keypairs import KeypairService
from localbcc.store.db import Store
from localbcc.store.migrate import SCHEMA_REVISION
from localbcc.store.transfer import FORMAT, VERSION, TransferError, export, import_

from ..server import LOCALBCC, ROOT, Server
from .data import LINUX, bulk, counters, populate, public_key, snapshot


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A SQLite database with thousands of key pairs and instances, made once."""
    path = tmp_path_factory.mktemp("source")
    url = f"sqlite:///{path / 'localbcc.db'}"
    made = populate(url, keypairs=150, instances=300)
    bulk(url, keypairs=3000, instances=4000)
    return url, made


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A small one of the same kinds, for the tests about rules: (URL, what was made, export)."""
    path = tmp_path_factory.mktemp("small")
    url = f"sqlite:///{path / 'localbcc.db'}"
    made = populate(url, keypairs=12, instances=20)
    bulk(url, keypairs=150, instances=120)
    return url, made, export_bytes(url)


def export_bytes(url: str) -> bytes:
    store = Store(url)
    try:
        out = io.BytesIO()
        export(store, out)
        return out.getvalue()
    finally:
        store.dispose()


def import_bytes(url: str, data: bytes) -> dict[str, int]:
    store = Store(url)
    try:
        return import_(store, io.BytesIO(data))
    finally:
        store.dispose()


def body(data: bytes) -> list[bytes]:
    """The lines after the header (which names the source and the time)."""
    return data.splitlines()[1:]


def test_round_trip_sqlite_postgresql_sqlite(source, fresh_database, tmp_path):
    """Every table equal, row for row, value for value, at every step."""
    src_url, _ = source
    first = export_bytes(src_url)
    lines = first.splitlines()
    header = json.loads(lines[0])
    assert header["format"] == FORMAT and header["version"] == VERSION
    assert header["schema_revision"] == SCHEMA_REVISION and header["source"] == "sqlite"
    end = json.loads(lines[-1])
    assert end["rows"]["keypairs"] > 3000 and end["rows"]["instances"] > 3500
    assert end["rows"]["tombstones"] > 300 and end["rows"]["idempotency"] > 300

    expected = snapshot(src_url)
    middle_url = fresh_database("middle")  # PostgreSQL when that backend runs, else SQLite
    counts = import_bytes(middle_url, first)
    assert counts == end["rows"]
    assert snapshot(middle_url) == expected
    assert counters(middle_url) == counters(src_url)

    second = export_bytes(middle_url)
    assert body(second) == body(first)
    back_url = f"sqlite:///{tmp_path / 'back.db'}"
    import_bytes(back_url, second)
    assert snapshot(back_url) == expected
    assert counters(back_url) == counters(src_url)
    assert body(export_bytes(back_url)) == body(first)


def test_ids_and_positions_are_never_reused_after_import(small, fresh_database):
    """The newest pair and instance were deleted: only the counters remember their seq."""
    src_url, made, data = small
    target = fresh_database()
    import_bytes(target, data)
    top = snapshot(src_url)
    highest_kp = max(r[3] for r in top["tombstones"] if r[0] == "keypair")
    highest_inst = max(r[3] for r in top["tombstones"] if r[0] == "instance")
    store = Store(target)
    try:
        ak, sk = made["creds"][0]
        clock = FakeClock(1_800_000_000.0)
        kp = KeypairService(store, clock, "bj", 100_000).import_(
            ak, {"name": "after", "publicKey": public_key()}, None)["keypair"]
        iid = InstanceService(store, clock, "bj", 0.0).create(
            ak, sk, {"imageId": LINUX}, None)["instanceIds"][0]
    finally:
        store.dispose()
    after = snapshot(target)
    kp_seq = next(r[0] for r in after["keypairs"] if r[1] == kp["keypairId"])
    inst_seq = next(r[0] for r in after["instances"] if r[1] == iid)
    assert kp_seq > highest_kp and inst_seq > highest_inst
    # and the replayed idempotency records still answer as before
    assert after["idempotency"] == top["idempotency"]


def test_import_refuses_a_database_that_is_not_empty(small, fresh_database):
    _, _, data = small
    target = fresh_database()
    store = Store(target)
    store.prepare()
    from localbcc.store.accounts import Accounts

    Accounts(store, FakeClock()).create()
    store.dispose()
    before = snapshot(target)
    with pytest.raises(TransferError, match=r"not empty \(accounts: 1 row\).*create a new one"):
        import_bytes(target, data)
    assert snapshot(target) == before


def test_import_into_an_empty_schema_works(small, fresh_database):
    """`db upgrade` first (schema, no rows) is as good as no tables at all."""
    src_url, _, data = small
    target = fresh_database()
    store = Store(target)
    store.upgrade()
    store.dispose()
    import_bytes(target, data)
    assert snapshot(target) == snapshot(src_url)


def test_a_damaged_file_imports_nothing(small, fresh_database):
    src_url, _, data = small
    lines = data.splitlines(keepends=True)
    target = fresh_database()
    truncated = b"".join(lines[: len(lines) // 2])
    with pytest.raises(TransferError, match="truncated"):
        import_bytes(target, truncated)
    miscounted = b"".join(lines[:5] + lines[6:])
    with pytest.raises(TransferError, match="end line counts"):
        import_bytes(target, miscounted)
    garbage = b"".join(lines[:3]) + b"{not json\n"
    with pytest.raises(TransferError, match="line 4 is not JSON"):
        import_bytes(target, garbage)
    # nothing was written: the same database takes the whole file afterwards
    import_bytes(target, data)
    assert snapshot(target) == snapshot(src_url)


def rows_of(data: bytes, table: str) -> list[int]:
    """The 0-based indexes, in data.splitlines(), of the row lines of one table."""
    return [n for n, line in enumerate(data.splitlines())
            if line.startswith(b'{"table":"%s"' % table.encode())]


def secret_keys(data: bytes) -> list[str]:
    return [json.loads(data.splitlines()[n])["row"]["secret_key"]
            for n in rows_of(data, "accounts")]


def assert_imports_nothing(target: str, data: bytes, damaged: bytes, match: str) -> str:
    """Importing `damaged` fails with one short message matching `match` that quotes no
    secret key, and writes nothing: the same database then takes all of `data`."""
    with pytest.raises(TransferError, match=match) as info:
        import_bytes(target, damaged)
    message = str(info.value)
    assert "\n" not in message and len(message) < 300
    assert not [sk for sk in secret_keys(data) if sk in message]
    assert not [t for t, rows in snapshot(target).items() if rows and t != "alembic_version"]
    import_bytes(target, data)
    return message


def test_a_duplicated_row_names_its_line_and_the_database_reason(small, fresh_database):
    """The database refuses it (a unique key): the error names the line, the table and
    the database's reason, never the row's values (the SQL parameters hold secret keys)."""
    _, _, data = small
    lines = data.splitlines(keepends=True)
    second_account = rows_of(data, "accounts")[1]
    twice = b"".join(lines[: second_account + 1] + lines[second_account:])
    assert_imports_nothing(
        fresh_database(), data, twice,
        rf"^line {second_account + 2}: the database refused this accounts row: "
        r"(UNIQUE constraint failed: accounts\.access_key"
        r'|duplicate key value violates unique constraint "accounts_pkey"); nothing was imported$')
    # in the middle of a batch of key pairs, after the one it repeats
    kp = rows_of(data, "keypairs")
    first, copy = kp[10], kp[40]
    later = b"".join(lines[: copy + 1] + [lines[first]] + lines[copy + 1:])
    assert_imports_nothing(
        fresh_database(), data, later,
        rf"^line {copy + 2}: the database refused this keypairs row: .*(UNIQUE|unique)")


def test_a_value_of_the_wrong_type_is_refused_on_every_backend(small, fresh_database):
    """SQLite would store a string in an INTEGER column: the column types are checked
    first, so both backends refuse the same file the same way."""
    _, _, data = small
    lines = data.splitlines(keepends=True)

    def changed(n: int, column: str, value) -> bytes:
        record = json.loads(lines[n])
        record["row"][column] = value
        return b"".join(lines[:n] + [orjson.dumps(record) + b"\n"] + lines[n + 1:])

    target = fresh_database()
    kp = rows_of(data, "keypairs")[5]
    assert_imports_nothing(target, data, changed(kp, "seq", "notanint"),
                           rf"^line {kp + 1}: keypairs\.seq must be an integer, not a string$")
    target = fresh_database()
    inst = rows_of(data, "instances")[3]
    assert_imports_nothing(target, data, changed(inst, "cpu_count", 1.5),
                           rf"^line {inst + 1}: instances\.cpu_count must be an integer, not a")
    target = fresh_database()
    account = rows_of(data, "accounts")[0]
    assert_imports_nothing(target, data, changed(account, "created_at", "yesterday"),
                           rf"^line {account + 1}: accounts\.created_at must be a number")
    target = fresh_database()
    assert_imports_nothing(target, data, changed(account, "secret_key", {"$date": "never"}),
                           rf"^line {account + 1}: accounts\.secret_key is not a value")


def test_a_row_line_of_the_wrong_shape_says_what_is_wrong(small, fresh_database):
    _, _, data = small
    lines = data.splitlines(keepends=True)
    target = fresh_database()
    no_row = b"".join(lines[:2]) + b'{"table": "keypairs"}\n' + b"".join(lines[2:])
    with pytest.raises(TransferError, match=r'^line 3: the keypairs line has no "row" object$'):
        import_bytes(target, no_row)
    unknown = b"".join(lines[:2]) + b'{"table": "keypair", "row": {}}\n' + b"".join(lines[2:])
    with pytest.raises(TransferError, match=r"^line 3: unknown table 'keypair'$"):
        import_bytes(target, unknown)


def test_headers_it_cannot_read_are_refused(fresh_database):
    target = fresh_database()
    with pytest.raises(TransferError, match="empty"):
        import_bytes(target, b"")
    with pytest.raises(TransferError, match="not a localbcc export"):
        import_bytes(target, b'{"hello": 1}\n')
    newer = {"format": FORMAT, "version": VERSION + 1, "schema_revision": SCHEMA_REVISION,
             "tables": {}}
    with pytest.raises(TransferError, match="newer than this localbcc reads"):
        import_bytes(target, orjson.dumps(newer) + b"\n")
    unknown = {"format": FORMAT, "version": VERSION, "schema_revision": "9999", "tables": {}}
    with pytest.raises(TransferError, match="revision 9999, which this localbcc does not know"):
        import_bytes(target, orjson.dumps(unknown) + b"\n")


def test_cli_moves_a_served_database_to_another_backend(fresh_server, fresh_database, tmp_path):
    """What a user does: export a running SQLite server's data, import it into this
    test's backend, serve that: the API shows the same key pairs and instances."""
    old = fresh_server("--transition-seconds", "0", database_url=None)  # always SQLite
    c = old.client()
    pairs = [c.import_keypair(keypair_name=f"p{n}", public_key=public_key()).keypair.keypair_id
             for n in range(3)]
    ids = c.create_instance(cpu_count=1, memory_capacity_in_gb=2, image_id=LINUX,
                            purchase_count=4).instance_ids
    c.attach_keypair(pairs[0], ids[:2])
    c.stop_instance(ids[3])
    c.delete_keypair(pairs[2])
    c.release_instance(ids[2])

    def view(srv: Server) -> tuple:
        cl = srv.client()
        kps = [(k.keypair_id, k.name, k.instance_count, k.fingerprint, k.created_time)
               for k in cl.list_keypairs().keypairs]
        insts = [(i.id, i.status, i.keypair_id, i.create_time, i.internal_ip)
                 for i in cl.list_instances().instances]
        return kps, insts

    before = view(old)
    dump = tmp_path / "dump.jsonl"
    out = subprocess.run([*LOCALBCC, "db", "export", str(dump), "--data-dir", str(old.data_dir)],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "exported" in out.stderr and "3 accounts" in out.stderr
    target = fresh_database("moved")
    into = subprocess.run([*LOCALBCC, "db", "import", str(dump), "--database-url", target],
                          capture_output=True, text=True, cwd=ROOT)
    assert into.returncode == 0, into.stderr
    new = Server(tmp_path / "new", old.credentials, database_url=target).start()
    try:
        assert view(new) == before
        # the moved pair keeps working: delete is refused while it is bound
        with pytest.raises(Exception, match="DeleteKeypairInUse|in use"):
            new.client().delete_keypair(pairs[0])
    finally:
        new.stop()
    shutil.rmtree(tmp_path / "new", ignore_errors=True)


def test_a_file_from_an_older_schema_is_imported_and_migrated(fresh_database, tmp_path):
    """Export works at any revision; import loads the file at its revision, then upgrades."""
    src = f"sqlite:///{tmp_path / 'old.db'}"
    store = Store(src)
    known = store.known_revisions()
    if len(known) < 2:
        pytest.skip("only one schema revision exists")
    store.upgrade(known[-2])
    store.dispose()
    key = public_key()
    blob = base64.b64decode(key.split()[1])
    md5 = ":".join(f"{b:02x}" for b in hashlib.md5(blob).digest())
    populate_old = [
        "INSERT INTO accounts VALUES ('ak-old', 'sk-old-0123456789', 1700000000.5)",
        "INSERT INTO keypairs (id, account, name, description, public_key, fingerprint, "
        f"blob_sha256, created_at) VALUES ('k-old00001', 'ak-old', 'old', '', '{key}', "
        f"'{md5}', '{hashlib.sha256(blob).hexdigest()}', 1700000001.25)",
        "INSERT INTO instances (id, account, name, hostname, description, image_id, instance_type, "
        "cpu_count, memory_gb, zone_name, payment_timing, created_at, state, transition, "
        "transition_until, keypair_id, key_in_force_at) VALUES ('i-old00001', 'ak-old', 'vm', "
        "'vm', '', 'm-Ubt2204a', 'N3', 1, 1, 'cn-bj-a', 'Postpaid', 1700000002.125, 'Running', "
        "NULL, 0, 'k-old00001', 1700000003.0)",
    ]
    from .test_schema import execute

    for sql in populate_old:
        execute(src, sql)
    data = export_bytes(src)
    assert json.loads(data.splitlines()[0])["schema_revision"] == known[-2]
    target = fresh_database()
    import_bytes(target, data)
    old, new = snapshot(src), snapshot(target)
    assert new["alembic_version"] == [(SCHEMA_REVISION,)]
    for table in ("accounts", "keypairs", "tombstones", "idempotency"):
        assert new[table] == old[table]
    width = len(old["instances"][0])  # the old columns come first, unchanged
    assert [r[:width] for r in new["instances"]] == old["instances"]


# -- every row is checked with the API's rules (issue 17) ---------------------------------

def _row(data: bytes, table: str, pick=lambda row: True) -> tuple[int, dict]:
    """(0-based index, row) of the first row of `table` that `pick` likes."""
    lines = data.splitlines()
    for n in rows_of(data, table):
        row = json.loads(lines[n])["row"]
        if pick(row):
            return n, row
    raise AssertionError(f"no such {table} row")


def _changed(data: bytes, n: int, **values) -> bytes:
    lines = data.splitlines(keepends=True)
    record = json.loads(lines[n])
    record["row"].update(values)
    return b"".join(lines[:n] + [orjson.dumps(record) + b"\n"] + lines[n + 1:])


ED_OTHER = public_key()
BAD_VALUES = [
    ("accounts", "access_key", "has space"),
    ("accounts", "secret_key", "short"),
    ("accounts", "created_at", -5),
    ("keypairs", "id", "k-short"),
    ("keypairs", "id", "i-12345678"),
    ("keypairs", "name", "1abc"),
    ("keypairs", "name", "a b"),
    ("keypairs", "name", "a\x1b[2Jb"),
    ("keypairs", "name", "n" * 66),
    ("keypairs", "description", "bell\x07"),
    ("keypairs", "description", "\u202eevil"),
    ("keypairs", "description", "x" * 141),
    ("keypairs", "public_key", "not a key"),
    ("keypairs", "public_key", ED_OTHER + "  two  spaces"),  # not the stored form
    ("keypairs", "fingerprint", "00:" * 15 + "00"),
    ("keypairs", "blob_sha256", "0" * 64),
    ("keypairs", "account", "nobody"),
    ("keypairs", "seq", 0),
    ("instances", "id", "i-toolong123"),
    ("instances", "name", "-web"),
    ("instances", "hostname", "web\x1b]0;owned\x07"),
    ("instances", "hostname", "Web-1"),
    ("instances", "description", "line\nbreak"),
    ("instances", "image_id", "m-NoSuch00"),
    ("instances", "cpu_count", 0),
    ("instances", "memory_gb", 20000),
    ("instances", "state", "Exploded"),
    ("instances", "transition", "melt"),
    ("instances", "transition_until", -1.0),
    ("instances", "zone_name", "a\x00b"),
    ("instances", "account", "nobody"),
    ("instances", "ssh_host_key", "zz"),
    ("instances", "ssh_host_fingerprint", "SHA256:nope"),
    ("instances", "ssh_host_public_key", ED_OTHER),
    ("tombstones", "kind", "volume"),
    ("tombstones", "id", "k-!!!!!!!!"),
    ("tombstones", "account", "nobody"),
    ("idempotency", "token", ""),
    ("idempotency", "token", "tab\there"),
    ("idempotency", "request_hash", "xyz"),
    ("idempotency", "response", "not json"),
    ("idempotency", "account", "nobody"),
]


@pytest.mark.parametrize("table,column,value", BAD_VALUES,
                         ids=[f"{t}.{c}={v!r:.20}" for t, c, v in BAD_VALUES])
def test_a_row_the_api_would_refuse_imports_nothing(small, fresh_database, table, column, value):
    """One bad value anywhere refuses the whole file: one line naming the line, table
    and column (never the value), nothing written."""
    _, _, data = small
    pick = (lambda row: row.get("ssh_host_key") is not None) if column.startswith("ssh_") \
        else (lambda row: True)
    n, _ = _row(data, table, pick)
    message = assert_imports_nothing(
        fresh_database(), data, _changed(data, n, **{column: value}),
        rf"^line {n + 1}: {table}\.{column} .*; nothing was imported$")
    if isinstance(value, str) and len(value) > 3 and column not in ("account", "access_key"):
        assert value not in message


def test_references_between_rows_are_checked(small, fresh_database):
    """A binding to another account's key pair, a tombstone of a live row, a Windows
    instance with a key pair: each refuses the file."""
    _, _, data = small
    owner = {}
    for n in rows_of(data, "keypairs"):
        row = json.loads(data.splitlines()[n])["row"]
        owner[row["id"]] = row["account"]
    n, inst = _row(data, "instances", lambda row: row["keypair_id"] is not None)
    foreign = next(k for k, a in owner.items() if a != inst["account"])
    assert_imports_nothing(fresh_database(), data, _changed(data, n, keypair_id=foreign),
                           rf"^line {n + 1}: instances\.keypair_id names no key pair of the "
                           rf"instance's account; nothing was imported$")
    assert_imports_nothing(fresh_database(), data, _changed(data, n, image_id="m-Win2019d"),
                           rf"^line {n + 1}: instances\.keypair_id binds a key pair to a Windows")
    t, tomb = _row(data, "tombstones", lambda row: row["kind"] == "keypair")
    live = next(iter(owner))
    assert_imports_nothing(fresh_database(), data,
                           _changed(data, t, id=live, account=owner[live]),
                           rf"^line {t + 1}: tombstones\.id names a keypair that is not deleted")


def test_what_the_api_stores_is_what_import_takes(small, fresh_database):
    """Names with combining marks, descriptions with any printable text, hostnames
    at the rule's edges: all imported as they are."""
    _, _, data = small
    n, _ = _row(data, "keypairs")
    m, _ = _row(data, "instances")
    text = "\u65e5\u672c\u3000\U0001f468\u200d\U0001f469 cafe\u0301"
    changed = _changed(_changed(data, n, name="cafe\u0301-\u0938\u0930\u094d\u0935\u0930",
                                description=text),
                       m, name="n" + "\u4e2d" * 64, hostname="a" + "-b" * 31 + "c")
    target = fresh_database()
    import_bytes(target, changed)
    rows = snapshot(target)
    assert any(r[4] == text for r in rows["keypairs"])


def test_cli_import_of_a_bad_row_says_which_and_exits_2(small, tmp_path):
    """`localbcc db import`: one line on stderr, exit status 2, no rows written; the
    same data directory then takes the good file."""
    src_url, _, data = small
    n, _ = _row(data, "instances")
    bad, good = tmp_path / "bad.jsonl", tmp_path / "good.jsonl"
    bad.write_bytes(_changed(data, n, hostname="web\x1b[2J"))
    good.write_bytes(data)
    target = tmp_path / "target"
    out = subprocess.run([*LOCALBCC, "db", "import", str(bad), "--data-dir", str(target)],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 2, out.stderr
    said = [line for line in out.stderr.splitlines()  # without the note of an edited build
            if "running every module from its source" not in line]
    assert said == [
        f"localbcc: line {n + 1}: instances.hostname is not a hostname the API accepts (2-64 "
        f"of a-z, 0-9, '-', '.', a letter first, no two symbols in a row, none last); "
        f"nothing was imported"]
    url = f"sqlite:///{target / 'localbcc.db'}"
    if (target / "localbcc.db").exists():
        assert not [t for t, rows in snapshot(url).items() if rows and t != "alembic_version"]
    into = subprocess.run([*LOCALBCC, "db", "import", str(good), "--data-dir", str(target)],
                          capture_output=True, text=True, cwd=ROOT)
    assert into.returncode == 0, into.stderr
    assert snapshot(url) == snapshot(src_url)
