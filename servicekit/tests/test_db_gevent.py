"""mysqlclient under gevent (orders-service's gunicorn worker): a statement waits on gevent's hub,
so the other greenlets run meanwhile, and an answer that never comes is an outage, not a hang.

Each case runs in a fresh interpreter, because gevent's monkey-patching changes the process."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from servicekit.testing import ThrowawayDatabase

pytest.importorskip("MySQLdb")
pytest.importorskip("gevent")


@pytest.fixture(scope="module")
def database():
    db = ThrowawayDatabase("skgevent")
    yield db
    db.drop()


def run_patched(code: str, url: str) -> str:
    script = "from gevent import monkey\nmonkey.patch_all()\n" + textwrap.dedent(code)
    result = subprocess.run(
        [sys.executable, "-c", script, url], capture_output=True, text=True, timeout=60, env={"DB_DRIVER": "auto"}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip()


def test_a_statement_lets_the_other_greenlets_run(database):
    out = run_patched(
        """
        import sys
        import gevent
        from sqlalchemy import text
        from servicekit.db import make_engine, make_session_factory, read

        engine = make_engine(sys.argv[1], pool_size=2, max_overflow=0)
        assert engine.dialect.driver == "mysqldb"
        factory = make_session_factory(engine)
        done = []

        def slow():
            read(factory, lambda s: s.execute(text("SELECT SLEEP(1)")).scalar_one())
            done.append("slow")

        def fast():
            gevent.sleep(0.1)  # the slow statement is on its way
            read(factory, lambda s: s.execute(text("SELECT 1")).scalar_one())
            done.append("fast")

        gevent.joinall([gevent.spawn(slow), gevent.spawn(fast)], raise_error=True)
        print(",".join(done))
        """,
        database.url,
    )
    assert out == "fast,slow"  # a blocking driver would finish the slow statement first


def test_an_answer_that_never_comes_is_a_lost_connection_and_a_503(database):
    out = run_patched(
        """
        import sys
        from sqlalchemy import exc, text
        from servicekit.db import is_database_unavailable, make_engine, make_session_factory, transaction

        engine = make_engine(sys.argv[1], pool_size=1, max_overflow=0, read_timeout_seconds=1)
        factory = make_session_factory(engine)
        try:
            transaction(factory, lambda s: s.execute(text("SELECT SLEEP(30)")).scalar_one(), attempts=1)
        except exc.OperationalError as error:
            print(error.orig.args[0], is_database_unavailable(error), error.connection_invalidated)
        # The pool heals: the next unit of work gets a fresh connection.
        print(transaction(factory, lambda s: s.execute(text("SELECT 41 + 1")).scalar_one()))
        """,
        database.url,
    )
    assert out.splitlines() == ["2013 True True", "42"]


def test_a_connection_waits_with_one_watcher_and_timer_and_the_timer_still_fires(database):
    """The read watcher and the timer are made once per connection and reused: statements that
    answered in time leave the timer stopped, and a later one that never answers still times out."""
    out = run_patched(
        """
        import sys
        from sqlalchemy import exc, text
        from servicekit.db import make_engine, read

        engine = make_engine(sys.argv[1], pool_size=1, max_overflow=0, read_timeout_seconds=1)
        runs = []  # the (watcher, timer) pairs each run of the unit of work waited with

        def statements(conn):
            dbapi = conn.connection.dbapi_connection
            runs.append(set())
            for n in range(5):
                conn.execute(text("SELECT :n"), {"n": n}).scalar_one()
                runs[-1].add((id(dbapi._answer_ready), id(dbapi._answer_overdue)))
            conn.execute(text("SELECT SLEEP(3)")).scalar_one()

        try:
            read(engine.connect, statements, attempts=1)
        except exc.OperationalError as error:
            print(error.orig.args[0], error.connection_invalidated)
        # A lost connection runs a read once more, on a new connection with waits of its own.
        print([len(pairs) for pairs in runs])
        """,
        database.url,
    )
    assert out.splitlines() == ["2013 True", "[1, 1]"]


def test_commits_and_rollbacks_go_through_and_leave_no_transaction_open(database):
    out = run_patched(
        """
        import sys
        from sqlalchemy import text
        from servicekit.db import make_engine, make_session_factory, read, transaction

        engine = make_engine(sys.argv[1], pool_size=1, max_overflow=0)
        factory = make_session_factory(engine)
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE IF NOT EXISTS g (id INT PRIMARY KEY, v INT NOT NULL)"))
            conn.execute(text("REPLACE INTO g VALUES (1, 0)"))
        transaction(factory, lambda s: s.execute(text("UPDATE g SET v = v + 1 WHERE id = 1")))

        def fails(session):
            session.execute(text("UPDATE g SET v = v + 100 WHERE id = 1"))
            raise RuntimeError("rolled back")

        try:
            transaction(factory, fails)
        except RuntimeError:
            pass
        print(read(factory, lambda s: s.execute(text("SELECT v FROM g WHERE id = 1")).scalar_one()))
        """,
        database.url,
    )
    assert out == "1"


def test_writes_sent_with_the_commit_wait_on_the_hub_and_apply(database):
    """The batch of `send_with_commit` is one statement to the hub: the worker's other greenlets
    run while the server works through it, and its writes apply with the COMMIT."""
    out = run_patched(
        """
        import sys
        import gevent
        from sqlalchemy import text
        from servicekit.db import make_engine, make_session_factory, read, send_with_commit, transaction

        engine = make_engine(sys.argv[1], pool_size=2, max_overflow=0)
        factory = make_session_factory(engine)
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE IF NOT EXISTS b (id INT PRIMARY KEY, v INT NOT NULL)"))
            conn.execute(text("REPLACE INTO b VALUES (1, 0)"))
        done = []

        def slow(session):
            send_with_commit(session, "DO SLEEP(1)")
            send_with_commit(session, "UPDATE b SET v = v + %(by)s WHERE id = 1", {"by": 5})

        def fast():
            gevent.sleep(0.1)  # the slow batch is on its way
            read(factory, lambda s: s.execute(text("SELECT 1")).scalar_one())
            done.append("fast")

        def slow_then_mark():
            transaction(factory, slow)
            done.append("slow")

        gevent.joinall([gevent.spawn(slow_then_mark), gevent.spawn(fast)], raise_error=True)
        print(",".join(done), read(factory, lambda s: s.execute(text("SELECT v FROM b WHERE id = 1")).scalar_one()))
        """,
        database.url,
    )
    assert out == "fast,slow 5"
