"""Statements are written once with ``?`` placeholders; a literal ``?`` or ``%`` in their text
(a string literal, a LIKE pattern, an operator) stays what it is on SQLite and PostgreSQL alike."""

from __future__ import annotations

from ffrtmp.master.store.factory import open_store
from ffrtmp.master.store.sqlstore import SqlStore
from ffrtmp.master.store.sqltext import pyformat, statements


def test_a_literal_question_mark_and_percent_sign_run_on_both_databases(database: str) -> None:
    store = open_store(database)
    assert isinstance(store, SqlStore)
    store.migrate()
    try:
        with store._tx() as conn:
            conn.execute("INSERT INTO duties (name, next_run_at) VALUES ('why? 100% sure', ?)", (7,))
            conn.execute("INSERT INTO duties (name, next_run_at) VALUES (?, ?)", ("50%?", 9))
        rows = store._read().execute(
            "SELECT name, next_run_at, 'a?b%c' AS literal, 7 % 4 AS modulo FROM duties"
            " WHERE name LIKE '%?%' AND name <> ? -- ? and % in a comment\n"
            " ORDER BY name", ("readiness probe",)).fetchall()
        assert [(r["name"], r["next_run_at"], r["literal"], r["modulo"]) for r in rows] == [
            ("50%?", 9, "a?b%c", 3), ("why? 100% sure", 7, "a?b%c", 3)]
        assert store._read().execute("SELECT name FROM duties WHERE name LIKE ?",
                                     ("why?%",)).fetchall()[0]["name"] == "why? 100% sure"
        row = store._read().execute("SELECT '100%?' AS text").fetchone()  # no parameters at all
        assert row is not None and row["text"] == "100%?"
    finally:
        store.close()


def test_placeholders_are_read_as_sql_not_as_text() -> None:
    sql = """SELECT '?', "a?%", ? -- ?%\n/* ? % */ WHERE x LIKE '%''?' AND y % 2 = ?"""
    assert pyformat(sql) == ("""SELECT '?', "a?%%", %s -- ?%%\n/* ? %% */"""
                             """ WHERE x LIKE '%%''?' AND y %% 2 = %s""")


def test_a_script_splits_only_where_a_statement_ends() -> None:
    script = "INSERT INTO t VALUES ('a;b'); -- c;d\n SELECT \";\" ;\n /* e;f */ ;"
    assert [s.strip() for s in statements(script)] == [
        "INSERT INTO t VALUES ('a;b')", '-- c;d\n SELECT ";"', "/* e;f */"]
