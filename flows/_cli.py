"""The command-line edge shared by every flow: Hydra's config in, one clear line out.

``run_cli(body)`` reads ``[overrides]`` from the command line, composes conf/ with them and
calls ``body(cfg)``. Around it:

- ``--help`` prints what the flow does, its main options and two examples (see
  :mod:`flows._help`); ``--cfg job`` prints the composed configuration and runs nothing.
- Every expected failure ends in one line on stderr, ``error: <what is wrong>`` with a hint
  that leads to a correct command, and exit code 2: the project's own errors
  (:class:`~tasks.core.errors.UpliftError`), a bad override (a typo'd key gets the closest
  valid one), a missing or read-only folder, a full disk. No traceback, unless ``--debug``
  is given (or ``UPLIFT_DEBUG=1``); Prefect's own log lines lose their tracebacks too.
- Ctrl-C or SIGTERM stop the run within seconds: the stage in progress is abandoned (every
  file is written atomically, so finished checkpoints stay valid and the next run resumes
  from them), Prefect's temporary server is stopped after the run, and the process exits
  130 / 143 with one line.
- Prefect's temporary server runs in a session of its own, so a signal sent to the run's
  process group reaches the run and not the server: the run can still report to it while it
  stops. :mod:`flows._reaper` ends that server should the run be killed outright.

Nothing below this module prints errors or calls ``sys.exit``.
"""
from __future__ import annotations

import contextlib
import difflib
import errno
import logging
import os
import re
import signal
import sys
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from omegaconf import DictConfig, OmegaConf

from flows import _reaper
from tasks.core.errors import UpliftError

log = logging.getLogger("uplift")

DEBUG_ENV = "UPLIFT_DEBUG"
EXIT_USAGE = 2
_GROUPS = ("data", "factors", "model", "campaign", "runner", "evaluate", "monitor", "profile", "source")


@dataclass(frozen=True)
class CliArgs:
    """The command line split into Hydra overrides and this edge's own switches."""

    overrides: list[str]
    help: bool = False
    show_config: bool = False
    debug: bool = False


def parse_args(argv: list[str]) -> CliArgs:
    """Separate ``--help``, ``--cfg job`` and ``--debug`` from the overrides."""
    overrides: list[str] = []
    show = helped = debug = False
    args = list(argv)
    while args:
        a = args.pop(0)
        if a in ("-h", "--help"):
            helped = True
        elif a in ("--cfg", "-c"):
            show = True
            if args and args[0] in ("job", "all", "hydra"):
                args.pop(0)
        elif a.startswith("--cfg="):
            show = True
        elif a == "--debug":
            debug = True
        else:
            overrides.append(a)
    return CliArgs(overrides, helped, show, debug or os.environ.get(DEBUG_ENV, "") not in ("", "0"))


# --------------------------------------------------------------------------- bad overrides

def _flat_keys(node: Any, prefix: str = "") -> list[str]:
    out: list[str] = []
    if isinstance(node, dict):
        for k, v in node.items():
            key = f"{prefix}{k}"
            out.append(key)
            out.extend(_flat_keys(v, key + "."))
    return out


def _known_keys(config_name: str) -> list[str]:
    from tasks.core.config import compose_config

    try:
        cfg = OmegaConf.to_container(compose_config([], config_name=config_name), resolve=False)
    except Exception:  # pragma: no cover - the default config always composes
        return list(_GROUPS)
    return sorted(set(_flat_keys(cfg)) | set(_GROUPS))


def closest_key(key: str, known: list[str]) -> str | None:
    """The known key most like ``key`` (a typo), or None when nothing is close."""
    match = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
    if match:
        return match[0]
    # the last part may be the typo: compare within the same parent
    parent, _, leaf = key.rpartition(".")
    siblings = [k.rpartition(".")[2] for k in known if k.rpartition(".")[0] == parent]
    match = difflib.get_close_matches(leaf, siblings, n=1, cutoff=0.6)
    if match and parent:
        return f"{parent}.{match[0]}"
    # a top-level key written inside a group (monitor.campaign_id -> campaign_id)
    return leaf if parent and leaf in known else None


def hydra_error_message(exc: BaseException, command: str, config_name: str = "config") -> str:
    """One line for a Hydra / OmegaConf error, with the valid key or option it most likely meant."""
    text = str(exc)
    m = re.search(r"Could not override '([^']+)'", text)
    if m:
        key = m.group(1)
        near = closest_key(key, _known_keys(config_name))
        hint = f"did you mean {near}=...?" if near else f"see the valid keys with {command} --cfg job"
        return f"unknown config key '{key}'; {hint}"
    m = re.search(r"Could not find '([^'/]+)/([^']+)'", text)
    if m:
        group, option = m.groups()
        options = re.findall(r"^\t(\S+)$", text.split("Config search path")[0], flags=re.M)
        near = difflib.get_close_matches(option, options, n=1)
        hint = f"did you mean {group}={near[0]}? " if near else ""
        return f"no {group} named '{option}' in conf/{group}/; {hint}available: {', '.join(options)}"
    m = re.search(r"Error parsing override '([^']+)'", text)
    if m:
        return (f"cannot read the override '{m.group(1)}': write key=value "
                f"(e.g. campaign.sample_fraction=0.2); see {command} --help")
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return f"bad configuration: {first}; see {command} --help"


# --------------------------------------------------------------------------- other failures

def os_error_message(exc: OSError) -> str:
    """One line for a failed read or write of a file, with what to do about it."""
    where = exc.filename or "a file"
    if exc.errno == errno.ENOSPC:
        return f"no space left on the device writing {where}; free some space or set paths.artifacts=<a folder on another disk>"
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return (f"cannot write {where}: {os.strerror(exc.errno).lower()}; "
                "set paths.artifacts=<a folder you can write>")
    if exc.errno == errno.ENOENT:
        return f"{where} does not exist"
    return f"{os.strerror(exc.errno).lower() if exc.errno else exc} ({where})"


def _command() -> str:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    name = getattr(spec, "name", None) or "flows.<name>"
    return f"python -m {name}"


class _NoTracebacks(logging.Filter):
    """Drops the traceback of log records (Prefect logs a failed run's with it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info or record.exc_text:
            record.exc_info = None
            record.exc_text = None
        if record.levelno >= logging.ERROR and isinstance(record.msg, str) and "Traceback" in record.msg:
            record.msg = record.msg.split("Traceback", 1)[0].rstrip()
        return True


def _quiet_tracebacks() -> None:
    import prefect  # noqa: F401  (configures Prefect's logging first)

    seen: set[int] = set()
    loggers = [logging.getLogger()] + [logging.getLogger(n) for n in list(logging.Logger.manager.loggerDict)]
    for lg in loggers:
        for h in getattr(lg, "handlers", []):
            if id(h) not in seen and isinstance(h, logging.StreamHandler):
                seen.add(id(h))
                if not any(isinstance(f, _NoTracebacks) for f in h.filters):
                    h.addFilter(_NoTracebacks())


class _NoBareCompletions(logging.Filter):
    """Drops a task run's bare ``Finished in state Completed()`` line from the console (the
    stage's own line says what it did; Prefect's UI keeps every line)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name == "prefect.task_runs" and record.levelno == logging.INFO
                    and record.getMessage().startswith("Finished in state Completed("))


def _configure_logging() -> None:
    """Console logging as Prefect sets it up (one handler on the root logger), with the HTTP
    client's per-request lines and the tasks' bare completion lines left out."""
    from prefect.logging.configuration import setup_logging

    setup_logging()
    for noisy in ("httpx", "httpcore", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    log.setLevel(logging.INFO)
    loggers = [logging.getLogger()] + [logging.getLogger(n) for n in list(logging.Logger.manager.loggerDict)]
    for lg in loggers:
        for h in getattr(lg, "handlers", []):
            if isinstance(h, logging.StreamHandler) and not any(isinstance(f, _NoBareCompletions) for f in h.filters):
                h.addFilter(_NoBareCompletions())


# --------------------------------------------------------------------------- the temporary server

_server_lock = threading.Lock()


def detach_temporary_server() -> None:
    """Make Prefect start its temporary server in a session of its own (see the module doc)."""
    import subprocess

    from prefect.server.api import server as server_module

    base = server_module.SubprocessASGIServer
    if None in base._instances:
        return

    class _OwnSession:
        """``subprocess`` as Prefect's server module sees it, starting children in a new session."""

        def __getattr__(self, name: str) -> Any:
            return getattr(subprocess, name)

        @staticmethod
        def Popen(*args: Any, **kwargs: Any) -> subprocess.Popen:  # noqa: N802 - mirrors subprocess
            kwargs.setdefault("start_new_session", True)
            return subprocess.Popen(*args, **kwargs)

    class DetachedServer(base):  # type: ignore[misc, valid-type]
        def _run_uvicorn_command(self) -> subprocess.Popen:
            with _server_lock:
                saved, server_module.subprocess = server_module.subprocess, _OwnSession()
                try:
                    return super()._run_uvicorn_command()
                finally:
                    server_module.subprocess = saved

    DetachedServer()  # registered as the instance Prefect's client takes


def stop_temporary_servers(timeout: float = 5.0) -> None:
    """Stop the temporary servers this process started (after the run is done with them)."""
    try:
        from prefect.server.api.server import SubprocessASGIServer
    except Exception:  # pragma: no cover
        return
    for inst in list(SubprocessASGIServer._instances.values()):
        proc = getattr(inst, "server_process", None)
        if proc is None or proc.poll() is not None:
            continue
        proc.terminate()
        try:
            proc.wait(timeout)
        except Exception:
            proc.kill()
        inst.running = False


# --------------------------------------------------------------------------- interruption

class Interrupted(KeyboardInterrupt):
    """Raised in the main thread by SIGTERM (Ctrl-C raises KeyboardInterrupt itself)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_interrupts = 0


def _on_signal(signum: int, frame: Any) -> None:
    global _interrupts
    _interrupts += 1
    if _interrupts > 1:  # asked twice: go now
        _exit_interrupted(signum, fast=True)
    # should unwinding hang, leave anyway
    timer = threading.Timer(8.0, _exit_interrupted, args=(signum, True))
    timer.daemon = True
    timer.start()
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Interrupted(signum)


def _exit_interrupted(signum: int, fast: bool = False) -> None:
    name = signal.Signals(signum).name
    print(f"interrupted ({name}): the run stopped; finished stages are kept, run the same command "
          "again to resume", file=sys.stderr, flush=True)
    if not fast:
        stop_temporary_servers()
    else:
        stop_temporary_servers(timeout=1.0)
    sys.stdout.flush()
    os._exit(128 + signum)


@contextlib.contextmanager
def report_errors(debug: bool | None = None, command: str | None = None, config_name: str = "config",
                  prefect: bool = True) -> Iterator[None]:
    """Run the body of a command: one line and exit 2 on an expected error, prompt exit on a signal.

    ``prefect=False`` is for commands that run no flow (they only read files): Prefect's
    logging and its temporary server are left alone, which saves seconds of start-up."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    debug = parse_args(sys.argv[1:]).debug if debug is None else debug
    command = command or _command()
    if prefect:
        _configure_logging()
        if not debug:
            _quiet_tracebacks()
    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)
    if prefect:
        detach_temporary_server()
        _reaper.start()
    message = None
    try:
        yield
    except KeyboardInterrupt as exc:
        _exit_interrupted(getattr(exc, "signum", signal.SIGINT))
    except UpliftError as exc:
        message = str(exc)
    except (HydraException, OmegaConfBaseException) as exc:
        message = hydra_error_message(exc, command, config_name)
    except OSError as exc:
        if debug:
            raise
        message = os_error_message(exc)
    except Exception as exc:  # an input the checks did not foresee: still one line
        if debug or not _is_data_error(exc):
            raise
        message = f"cannot read the input data: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    if message is not None:
        if debug:
            import traceback

            traceback.print_exc()
        print(f"error: {message}", file=sys.stderr, flush=True)
        sys.exit(EXIT_USAGE)


def _is_data_error(exc: BaseException) -> bool:
    """Errors of the libraries that read input files (a corrupt Parquet or JSON file)."""
    import json

    try:
        import pyarrow as pa

        arrow = (pa.ArrowException,)
    except Exception:  # pragma: no cover
        arrow = ()
    return isinstance(exc, (json.JSONDecodeError, UnicodeDecodeError, *arrow))


def run_cli(body: Callable[[DictConfig], Any], config_name: str = "config", argv: list[str] | None = None,
            prefect: bool = True) -> None:
    """Run ``body`` over the composed configuration (see the module docstring); ``prefect=False``
    for a command that runs no flow (see :func:`report_errors`)."""
    from flows._help import help_text
    from tasks.core.config import compose_config

    args = parse_args(sys.argv[1:] if argv is None else argv)
    command = _command()
    if args.help:
        print(help_text(command))
        return
    with report_errors(debug=args.debug, command=command, config_name=config_name, prefect=prefect):
        cfg = compose_config(args.overrides, config_name=config_name)
        if args.show_config:
            print(OmegaConf.to_yaml(cfg), end="")
            return
        body(cfg)
