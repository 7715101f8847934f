"""Reading from PostgreSQL through ADBC: connection, a consistent snapshot, schemas, batches.

The driver is ``adbc-driver-postgresql`` (Apache Arrow's ADBC over libpq): a query's rows
arrive as Arrow record batches of a bounded size, decoded from the server's binary COPY, so a
table larger than memory streams through. libpq reads the password from the URL, from
``PGPASSWORD`` or from ``~/.pgpass``; :func:`redact_url` keeps it out of every message and
manifest. A :class:`Session` reads every table inside one ``REPEATABLE READ, READ ONLY``
transaction: all tables show the database at one moment, even while the shop keeps writing.
"""
from __future__ import annotations

import queue
import re
import threading
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Iterator
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import pyarrow as pa

from tasks.core.errors import ConfigError, DataValidationError, NotFoundError

SCHEMES = ("postgresql", "postgres")
DRIVER = "adbc-driver-postgresql"
_BATCH_OPTION = "adbc.postgresql.batch_size_hint_bytes"
PG_TYPE_KEY = b"POSTGRESQL:type"


def _netloc(user: str | None, host: str | None, port: int | None) -> str:
    auth = f"{quote(user, safe='')}@" if user else ""
    host = host or ""
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    return f"{auth}{host}" + (f":{port}" if port else "")


def split_url(url: str) -> tuple[str, str | None]:
    """``(url without its password, the password or None)``; ConfigError when not a PostgreSQL URL."""
    url = str(url or "").strip()
    example = "e.g. source.url=postgresql://user@host:5432/shop"
    if not url:
        raise ConfigError(f"config 'source', key 'url': not set; {example}")
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        shown = url if "@" not in url else f"{parts.scheme}://...@{url.rsplit('@', 1)[1]}"
        raise ConfigError(f"config 'source', key 'url': {shown!r} is not a PostgreSQL URL; {example}")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"config 'source', key 'url': the port of {redact_url(url)!r} is not a number; "
                          f"{example}") from None
    password = unquote(parts.password) if parts.password is not None else None
    user = unquote(parts.username) if parts.username else None
    clean = urlunsplit((parts.scheme, _netloc(user, parts.hostname, port), parts.path, parts.query, ""))
    return clean, password


def redact_url(url: str) -> str:
    """``url`` with its password (and any ``password=`` parameter) removed."""
    parts = urlsplit(str(url))
    try:
        port = parts.port
    except ValueError:
        port = None
    user = unquote(parts.username) if parts.username else None
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k.lower() != "password"])
    return urlunsplit((parts.scheme, _netloc(user, parts.hostname, port), parts.path, query, ""))


def _with_param(url: str, key: str, value: str) -> str:
    parts = urlsplit(url)
    params = parse_qsl(parts.query)
    if any(k == key for k, _ in params):
        return url
    return urlunsplit(parts._replace(query=urlencode(params + [(key, value)])))


def library_versions() -> dict[str, str]:
    """Versions of the libraries a snapshot is read and written with."""
    names = (DRIVER, "adbc-driver-manager", "pyarrow", "duckdb")
    return {n: metadata.version(n) for n in names}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    text = re.sub(r"^[A-Z_]+: (\[libpq\] )?", "", text)
    text = text.replace("Failed to connect: ", "")
    return " ".join(text.split())


def _connect_error(exc: BaseException, shown: str) -> ConfigError:
    msg = _first_line(exc)
    low = msg.lower()
    if "password authentication failed" in low or "no password supplied" in low:
        hint = ("check the user and give the password in PGPASSWORD or ~/.pgpass "
                "(or in the URL: postgresql://user:PASSWORD@host:port/db)")
    elif "does not exist" in low and "database" in low:
        hint = "check the database name at the end of source.url"
    elif "role" in low and "does not exist" in low:
        hint = "check the user name in source.url"
    elif any(w in low for w in ("connection refused", "could not translate host", "timeout expired",
                                "no route to host", "name or service not known", "could not connect")):
        hint = "check the host and port in source.url and that the server accepts TCP connections"
    else:
        hint = "check source.url"
    msg = msg.split(" failed: ", 1)[1] if " failed: " in msg else msg
    msg = msg.split(" Is the server running")[0].rstrip(" ;")
    return ConfigError(f"cannot connect to {shown}: {msg}; {hint}")


@dataclass
class Session:
    """One read-only connection holding one snapshot of the database (see the module doc)."""

    url: str                       # without the password
    conn: Any
    server: str = ""

    def schema(self, query: str) -> pa.Schema:
        """The Arrow schema of ``query``'s result; the server plans it but returns no rows."""
        with self.conn.cursor() as cur:
            return cur.adbc_execute_schema(query)

    def batches(self, query: str, batch_bytes: int, prefetch: int = 1) -> Iterator[pa.RecordBatch]:
        """``query``'s rows as record batches of about ``batch_bytes`` each.

        A reader thread decodes up to ``prefetch`` batches ahead (the driver works without
        the GIL), so the server's COPY, the decoding and the caller's work overlap; at most
        ``prefetch + 1`` batches are in memory on this side.
        """
        with self.conn.cursor() as cur:
            cur.adbc_statement.set_options(**{_BATCH_OPTION: str(int(batch_bytes))})
            cur.execute(query)
            reader = cur.fetch_record_batch()
            try:
                yield from _read_ahead(reader, prefetch)
            finally:
                reader.close()

    def scalar(self, query: str) -> Any:
        with self.conn.cursor() as cur:
            cur.execute(query)
            row = cur.fetchone()
            return row[0] if row else None

    def relations(self) -> list[str]:
        """Tables and views the session can read in its search path (for hints)."""
        with self.conn.cursor() as cur:
            cur.execute("SELECT table_name FROM information_schema.tables "
                        "WHERE table_schema = ANY (current_schemas(false)) ORDER BY 1")
            return [r[0] for r in cur.fetchall()]

    def reset(self) -> None:
        """Leave a failed statement's aborted transaction (used after an error, for hints)."""
        self.conn.rollback()

    def close(self) -> None:
        try:
            self.conn.rollback()
        finally:
            self.conn.close()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


_DONE = object()


def _read_ahead(reader: Iterator[pa.RecordBatch], depth: int) -> Iterator[pa.RecordBatch]:
    """Iterate ``reader`` in a thread of its own, ``depth`` items ahead of the consumer."""
    if depth <= 0:
        yield from reader
        return
    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in reader:
                while not stop.is_set():
                    try:
                        items.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            items.put(_DONE)
        except BaseException as exc:  # handed to the consumer, raised there
            items.put(exc)

    thread = threading.Thread(target=produce, name="adbc-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # let the reader finish its batch before the cursor closes
            try:
                items.get(timeout=0.1)
            except queue.Empty:
                pass
        thread.join()


def open_session(url: str, password: str | None = None, connect_timeout: int = 10) -> Session:
    """Connect to ``url`` and start the read-only snapshot transaction.

    The password comes from ``password``, else from libpq's own sources (PGPASSWORD,
    ~/.pgpass). A refused connection is one :class:`ConfigError` with a hint; it never shows
    the password.
    """
    import adbc_driver_postgresql.dbapi as adbc

    clean, in_url = split_url(url)
    password = password if password is not None else in_url
    target = clean
    if password is not None:
        parts = urlsplit(clean)
        user = quote(unquote(parts.username or ""), safe="")
        auth = f"{user}:{quote(password, safe='')}@"
        target = urlunsplit(parts._replace(netloc=auth + parts.netloc.split("@", 1)[-1]))
    target = _with_param(target, "connect_timeout", str(int(connect_timeout)))
    target = _with_param(target, "application_name", "uplift-ingest")
    shown = redact_url(clean)
    try:
        conn = adbc.connect(target)
    except adbc.Error as exc:
        raise _connect_error(exc, shown) from None
    session = Session(shown, conn)
    try:
        with conn.cursor() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cur.execute("SET TIME ZONE 'UTC'")
        session.server = "PostgreSQL " + str(session.scalar("SELECT current_setting('server_version')"))
    except BaseException:
        conn.close()
        raise
    return session


# --------------------------------------------------------------------------- query errors

def _sqlstate(exc: BaseException) -> str:
    return str(getattr(exc, "sqlstate", "") or "")


def query_error(exc: BaseException, table: str, query: str, session: Session) -> Exception:
    """A database error of ``table``'s query as one project error with a hint."""
    import adbc_driver_manager

    if not isinstance(exc, adbc_driver_manager.Error):
        return exc  # type: ignore[return-value]
    state = _sqlstate(exc)
    msg = re.sub(r"\s*Query was:.*", "", _first_line(exc), flags=re.S)
    msg = re.sub(r"^Failed to (prepare|execute) query: (could not begin COPY: )?", "", msg)
    msg = re.sub(r"^ERROR:\s*", "", msg)
    msg = re.sub(r"\s*LINE \d+:.*", "", msg)
    key = f"source.queries.{table}"
    if state == "42P01":  # undefined table
        try:
            session.reset()
            known = session.relations()
        except Exception:  # the hint is a courtesy; the error stands without it
            known = []
        seen = f"; tables it can read: {', '.join(known[:20])}" if known else ""
        return NotFoundError(f"table '{table}': the database has no such table ({msg}){seen}; "
                             f"name the right one with {key}='SELECT ... FROM <your table>'")
    if state == "42703":  # undefined column
        m = re.search(r'column "?([^" ]+)"? does not exist', msg)
        col = m.group(1).split(".")[-1] if m else None
        return DataValidationError(table, col, f"{msg}; fix the query in {key} (it was: {query})")
    if state == "42501":
        return ConfigError(f"table '{table}': {msg}; the user in source.url needs SELECT on it "
                           f"(GRANT SELECT ON ... TO <user>)")
    if state.startswith("42"):
        return ConfigError(f"table '{table}': the query in {key} is not valid SQL here: {msg} (it was: {query})")
    return ConfigError(f"table '{table}': the database refused the query ({msg}; it was: {query})")
