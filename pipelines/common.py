"""What the pipelines share: building library objects from config, and one-line errors."""
from __future__ import annotations

import _thread
import contextlib
import errno
import functools
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import typing
from collections.abc import Callable
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, Override, QuotedString
from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from pipelines import CONF_DIR
from vidrnn.cli import PIPE_CLOSED, pipe_closed
from vidrnn.device import decode_workers, resolve_device
from vidrnn.files import n_videos, shard_from_env, single_line
from vidrnn.models import FrameEncoder, resolved_weights
from vidrnn.schemas import bad_value, key_type, unknown_key, validate  # (importing it registers the apps' schemas)
from vidrnn.sweeps import (ERROR, clear_error, mark_sweep_start, one_line, record_error, summarize_sweep,
                           sweep_runs)
from vidrnn.video import Sampling

EXIT_OK, EXIT_ERROR, EXIT_SOME_FAILED = 0, 1, 2
_FILE_SYSTEM = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
                errno.EFBIG: "file too large (the file size limit was reached)", errno.EROFS: "read-only file system",
                errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
                errno.ENOTDIR: "not a folder (part of the path is a file)", errno.ENOENT: "no such file or folder",
                errno.EEXIST: "exists and is not a folder"}
_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
MIN_FREE_BYTES = 1 << 20  # a run dir on a disk with less free space is refused before Hydra writes to it


INTERRUPTED = "interrupted: what was finished is kept; run the same command again to go on"
PIPE_STOPPED = "stopped: the pipe it printed to was closed (as `| head` does); " + INTERRUPTED.split(": ", 1)[1]


class Terminated(KeyboardInterrupt):
    """SIGTERM (a user's ``kill``, a scheduler's preemption): stopped as Ctrl-C stops a run, status 143."""


_SIGNALLED: list[int] = []  # the signals that stopped this run
_HANDLED: list[bool] = []  # an interrupt reached run_app: the run is stopping


def _stop(signum, frame) -> None:
    """SIGINT or SIGTERM: noted, then raised. An exception that the interrupt turns into another one (Ctrl-C
    during an import is "ImportError: initialization failed") still stops the run as an interrupt."""
    _SIGNALLED.append(signum)
    raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt


def _unraisable(hook) -> None:
    """``sys.unraisablehook``: an interrupt that a finalizer swallowed (the signal's handler ran inside a
    ``__del__``: "Exception ignored in ...", and the run went on) is raised again in the main thread."""
    if isinstance(hook.exc_value, KeyboardInterrupt) and _SIGNALLED:  # _stop runs again in the main thread, once
        timer = threading.Timer(0.1, _again)  # it is out of the finalizer and this hook
        timer.daemon = True
        timer.start()
        return
    sys.__unraisablehook__(hook)


def _again() -> None:
    if not _HANDLED:  # (the interrupt may have reached run_app by another way meanwhile)
        _thread.interrupt_main()


def _interrupted(e: BaseException) -> int | None:
    """The exit status of an interrupt: 143 for SIGTERM, 130 for Ctrl-C, 141 for a closed output pipe
    (``| head``); None for an error of its own."""
    if pipe_closed(e):
        return PIPE_CLOSED
    if isinstance(e, Terminated) or signal.SIGTERM in _SIGNALLED:
        return 128 + signal.SIGTERM
    return 130 if isinstance(e, KeyboardInterrupt) or _SIGNALLED else None


def hydra_app(config_name: str) -> Callable:
    """``hydra.main`` for conf/<config_name>.yaml, after a check of the command line's keys: one the app does
    not have is a one-line error naming the closest one (Hydra's own is six lines and advises ``+key=``)."""
    def wrap(fn: Callable) -> Callable:
        run = hydra.main(version_base="1.3", config_path=CONF_DIR, config_name=config_name)(fn)

        @functools.wraps(fn)
        def main() -> None:
            try:
                sys.argv[1:] = _command_line(config_name, sys.argv[1:])
            except ValueError as e:
                print(f"error: {e}", file=sys.stderr)
                sys.exit(EXIT_ERROR)
            signal.signal(signal.SIGTERM, _stop)
            sys.unraisablehook = _unraisable
            if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # (not where it is ignored)
                signal.signal(signal.SIGINT, _stop)
            try:
                run()
            except ValueError as e:  # Hydra's options in conflict (--cfg with -m): the apps' own errors end in run_app
                print(f"error: {single_line(str(e))}", file=sys.stderr)
                sys.exit(EXIT_ERROR)
            except (KeyboardInterrupt, BrokenPipeError) as e:  # in Hydra's own code: between a sweep's jobs,
                code = _interrupted(e)  # composing a config, printing --help or --cfg
                if code is None:
                    raise
                if code != PIPE_CLOSED:
                    print(INTERRUPTED, file=sys.stderr)
                sys.exit(code)
        return main
    return wrap


# Hydra's own options; those of the first set take a value as the next argument
_VALUE_FLAGS = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn", "--config-dir",
                "-cd", "--experimental-rerun", "--info", "-i"}  # "--info" and "-i": its value may be left out
_FLAGS = _VALUE_FLAGS | {"--help", "-h", "--hydra-help", "--version", "--resolve", "--run", "-r", "--multirun", "-m",
                         "--shell-completion", "-sc"}


def _command_line(app: str, args: list[str]) -> list[str]:
    """The command line as Hydra is to read it, or a ValueError naming, in one line, the first argument that
    ``app`` cannot take (Hydra's own message runs to six lines). A value Hydra's grammar refuses unquoted (a
    path with letters beyond ASCII, or ``~``: expanded for Hydra's own folders) is quoted for it, and Hydra's
    options go last (its argparse takes no key=value after one: ``... -m key=value``)."""
    if "-sc" in args or "--shell-completion" in args:  # install=bash, query=...: Hydra's to read
        return args
    multirun = any(a == "-m" or (len(a) > 2 and "--multirun".startswith(a)) or a.lower() == "hydra.mode=multirun"
                   for a in args)  # (argparse takes --multi for --multirun)
    parser, flags, out = OverridesParser.create(), [], []
    for i, arg in enumerate(args):
        option_value = i and args[i - 1] in _VALUE_FLAGS and ("=" not in arg or args[i - 1] not in ("--info", "-i"))
        if arg.startswith("-") or option_value:
            if arg.startswith("--") and not option_value and not any(f.startswith(arg.split("=")[0]) for f in _FLAGS):
                raise ValueError(f"{arg}: write {arg.lstrip('-')} (key=value, without dashes)")
            flags.append(arg)
            continue
        if "=" not in arg and not arg.startswith("~"):
            raise ValueError(f"cannot read {arg!r}: write key=value, no spaces around '='; vidrnn {app} --help lists "
                             "the keys")
        key, _, value = arg.partition("=")
        if key.startswith("hydra.") and key.endswith(".dir") and value.startswith("~"):
            arg = f"{key}={os.path.expanduser(value)}"  # Hydra's own folders: no vidrnn path key expands them
        given = arg
        try:
            override = parser.parse_override(arg)
        except HydraException as e:
            arg, override = _quoted(parser, arg, e)
        error = _override_error(app, override, multirun, given)
        if error:
            raise ValueError(error)
        out.append(arg)
    return out + flags


def _quoted(parser: OverridesParser, arg: str, error: HydraException) -> tuple[str, Override]:
    """``key='value'`` (each value of a simple sweep quoted) with Hydra's reading of it, for a ``key=value`` its
    grammar refuses unquoted; a ValueError where quoting does not help (quotes, a sweep function, a list)."""
    key, _, value = arg.partition("=")
    if not any(c in value for c in "'\"\\()[]{}"):
        quoted = f"{key}=" + ",".join(f"'{v}'" for v in value.split(","))
        with contextlib.suppress(HydraException):
            return quoted, parser.parse_override(quoted)
    quote = '"' if "'" in value else "'"
    raise ValueError(f"cannot read {arg!r} ({str(error).splitlines()[0]}): quote a value with other characters "
                     f"than ASCII letters, digits, spaces and / . - _ as key={quote}value{quote}") from error


def _override_error(app: str, override: Override, multirun: bool, given: str) -> str | None:
    """Why a parsed ``key=value`` cannot be ``app``'s, in one line: a key it does not have, a config file a group
    does not hold (``video=smal``), a value of the wrong type or shape (each value of a sweep's list checked),
    several values without ``-m`` (``given``: the argument as typed); None where Hydra is left to read it (its
    own keys, deletions, sweeps over ranges)."""
    name, value = override.key_or_group, override.value()
    values = value.list if isinstance(value, ChoiceSweep) else [value]
    values = [v.text if isinstance(v, QuotedString) else v for v in values]  # as Hydra parsed them
    if re.match(r"hydra\b", name):  # Hydra's keys and groups: hydra.run.dir, hydra/launcher=joblib
        return None
    group = Path(CONF_DIR, name)
    if group.is_dir():  # video=small picks conf/video/small.yaml; a sweep lists several
        choices = sorted(p.stem for p in group.glob("*.yaml"))
        wrong = [c for c in values if isinstance(c, str) and re.fullmatch(r"[\w-]+", c) and c not in choices]
        return f"{name} has no {wrong[0]!r}: choose one of {', '.join(choices)}" if wrong else None
    if (error := unknown_key(app, name)) or override.is_delete():
        return error
    if not override.is_sweep_override():
        return bad_value(app, name, value)
    if not multirun:
        key, _, text = given.partition("=")
        kind = key_type(app, name)
        one = f"write them as one list: {key}=[{text}]" if typing.get_origin(kind) is list else \
            f"quote them as one value: {key}='{text}'" if kind is str else None
        return f"{given} lists several values: add -m to run a job for each (a sweep)" + (f", or {one}" if one else "")
    if not isinstance(value, ChoiceSweep):  # range(...), interval(...): Hydra checks them
        return None
    return next((e for v in values if (e := bad_value(app, name, v))), None)


def sampling_from(video: DictConfig) -> Sampling:
    return Sampling(mode=video.sampling, num_frames=video.num_frames, fps=video.fps,
                    max_frames=video.max_frames, window_s=video.window_s, stride_s=video.stride_s)


def folder_options(cfg: DictConfig) -> dict:
    """The keyword arguments every folder job (extract, caption, count) takes alike: decoding, batching,
    device, which files and which shard, progress bars."""
    return {"backend": cfg.video.backend, "workers": decode_workers(cfg.video.workers), "batch_size": cfg.batch_size,
            "device": resolve_device(cfg.device), "extensions": list(cfg.extensions),
            "shard": shard_from_env(cfg.shard.index, cfg.shard.count), "progress": not cfg.quiet}


def warn_unread_video_keys(app: str, read=("video.backend", "video.workers"), why: str = "the checkpoint's "
                           "sampling and frame size are used (those it was trained with)") -> None:
    """A line naming the ``video.*`` keys set on the command line that this run does not ``read``."""
    keys = [o.split("=", 1)[0].lstrip("+~") for o in HydraConfig.get().overrides.task]
    unread = [k for k in keys if k.startswith("video.") and k not in read]
    if unread:
        print(f"{app}: warning: {', '.join(unread)} not used: {why}")


def encoder_spec(encoder: DictConfig) -> dict:
    """The plain dict that describes the frame encoder (for manifests and checkpoints); ``DEFAULT``
    weights are named as the weights they are."""
    spec = {k: encoder[k] for k in ("name", "weights", "layer", "pooling", "grid")}
    return {**spec, "weights": resolved_weights(spec["name"], spec["weights"])}


def encoder_from(encoder: DictConfig) -> tuple[FrameEncoder, dict]:
    """The frozen frame encoder and its spec."""
    spec = encoder_spec(encoder)
    return FrameEncoder(**spec), spec


def error_line(error: BaseException) -> str:
    """The one line a user sees for an error that stopped a job: a file-system error names the path and
    says what is wrong in words."""
    if isinstance(error, OSError) and error.errno in _FILE_SYSTEM and (error.filename or error.errno in _FULL):
        full = "; what was finished is kept: make room and run the same command again" if error.errno in _FULL else ""
        # a full disk with no file named: a temporary file's write (long videos' features are spooled to TMPDIR)
        where = error.filename or f"the output or the temporary folder {tempfile.gettempdir()} (TMPDIR)"
        return f"{where}: {_FILE_SYSTEM[error.errno]}{full}"
    return one_line(error)


class RunDirCheck(Callback):
    """Makes Hydra's run (or sweep) dir before Hydra writes into it, so a folder that cannot be made, or a
    full disk, is a one-line error and status 1 rather than Hydra's traceback (named in each pipeline's
    ``hydra.callbacks``)."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        _make_dir(config.hydra.run.dir, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        _make_dir(config.hydra.sweep.dir, "hydra.sweep.dir")
        mark_sweep_start(config.hydra.sweep.dir)

    def on_job_end(self, config: DictConfig, job_return, **kwargs) -> None:
        """An Optuna search whose last trial failed like every one before it ends here as any sweep with
        failed runs does (Optuna itself would end in a "No trials are completed yet" traceback)."""
        trials = OmegaConf.select(config, "hydra.sweeper.n_trials", default=None)
        if config.hydra.mode == RunMode.MULTIRUN and trials and config.hydra.job.num >= trials - 1:
            sweep = Path(config.hydra.sweep.dir)
            if all((run / ERROR).exists() for run in sweep_runs(sweep)):
                self.on_multirun_end(config)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        """A sweep with failed runs ends with one line naming them and status 2 (their errors are in their
        run dirs' error.txt and the summary table)."""
        sweep = Path(config.hydra.sweep.dir)
        failed = [str(run.relative_to(sweep)) for run in sweep_runs(sweep) if (run / ERROR).exists()]
        if failed:
            failed.sort(key=lambda name: (len(name), name))  # 2 before 10
            print(f"error: failed runs of the sweep: {', '.join(failed)} (each run dir under {sweep} has its "
                  f"error in {ERROR})", file=sys.stderr)
            sys.exit(EXIT_SOME_FAILED)


def _make_dir(path: str, key: str) -> None:
    """Make the run dir ``path`` (the config's ``key``); a one-line error naming the key where it cannot be: the
    default (logs under the current folder) fails where that folder is read-only."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
        if shutil.disk_usage(path).free < MIN_FREE_BYTES:
            raise OSError(errno.ENOSPC, "no space left", path)
    except OSError as e:
        print(f"error: {error_line(e)} (making {key}={path}: give it a writable folder)", file=sys.stderr)
        sys.exit(EXIT_ERROR)


def run_app(job: Callable[[DictConfig], int], cfg: DictConfig) -> None:
    """Run ``job(cfg)`` and exit with its status; any error becomes one line on stderr and status 1
    (set VIDRNN_DEBUG=1 for the traceback). In a Hydra multirun it never exits (that would end the
    sweep): a failed job's error goes to its run dir's error.txt, the other jobs run, and the sweep
    ends with status 2 (``RunDirCheck``); an interrupt ends the sweep."""
    logging.getLogger("vidrnn").setLevel(logging.INFO)
    logging.raiseExceptions = False  # a log file on a full disk must not print tracebacks
    run_dir = HydraConfig.get().runtime.output_dir if HydraConfig.get().mode == RunMode.MULTIRUN else None
    if run_dir:
        clear_error(run_dir)
    try:
        validate(cfg)
        code = job(cfg)
    except (Exception, KeyboardInterrupt) as e:
        interrupted = _interrupted(e)
        if interrupted:
            _HANDLED.append(True)
        stopped = PIPE_STOPPED if interrupted == PIPE_CLOSED else INTERRUPTED
        print(stopped if interrupted else f"error: {error_line(e)}", file=sys.stderr)
        if run_dir:
            record_error(run_dir, KeyboardInterrupt() if interrupted else e)
            if interrupted:  # the sweep ends here: its summary says so (it was the one after the last job)
                with contextlib.suppress(Exception, KeyboardInterrupt):  # (a second Ctrl-C: stop at once)
                    summarize_sweep(HydraConfig.get().sweep.dir)
        if os.environ.get("VIDRNN_DEBUG", "0") not in ("", "0"):
            raise
        code = interrupted or EXIT_ERROR
    if run_dir is None or code in (130, 143, PIPE_CLOSED):  # an interrupt ends a sweep too (SystemExit passes
        sys.exit(code)  # Hydra's job wrapper)


def report(name: str, summary, output: str) -> int:
    """Print what a prediction pipeline did; the exit status says whether any video failed."""
    print(f"{name}: {n_videos(len(summary.done))} done, {summary.skipped} already done, "
          f"{len(summary.failed)} failed -> {output}")
    print_failed(summary.failed)
    return EXIT_SOME_FAILED if summary.failed else EXIT_OK


def print_score_notes(app: str, result: dict) -> None:
    """Why caption scores may not be the papers': the note on their tokens and on METEOR, where there is one."""
    for key, what in (("tokenizer", "tokens"), ("meteor", "METEOR")):
        if result.get(f"{key}_note"):
            print(f"{app}: {what}: {result[f'{key}_note']}")


def print_failed(failed: dict[str, str], what: str = "failed") -> None:
    """A line per video that failed, ``  failed: <video>: <reason>`` (a newline in a name is escaped)."""
    for video, reason in failed.items():
        print(f"  {what}: {single_line(video)}: {single_line(reason)}")
