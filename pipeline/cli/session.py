"""The preamble of every command that works on a journal against ENS: settings, lock, target, ledger."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from pipeline.cli.output import settle_format
from pipeline.cli.target import Target, open_target
from pipeline.config import Config, load_config
from pipeline.errors import StoppedAtStartup, startup_stop
from pipeline.journal.ledger import Ledger
from pipeline.journal.lock import acquire_lock
from pipeline.journal.reader import read_ledger, repair_and_warn
from pipeline.log import configure_logging, say
from pipeline.settings import RunSettings, resolve_settings, unknown_env


def load_settings(config_path: Path | None, flags: Mapping[str, object]) -> tuple[Config, RunSettings]:
    """The config file and the run settings (flag > ``ENS_MIGRATE_*`` > ``[run]`` > default); warn
    of ``ENS_MIGRATE_*`` variables that name no setting. From here the command's lines and errors
    use the log format the settings chose."""
    config = load_config(config_path)
    settings = resolve_settings(flags=flags, env=os.environ, file_section=config.sections.get("run", {}),
                                file_name=config.source)
    settle_format(settings.log_format)
    for warning in unknown_env(os.environ):
        say(settings.log_format, "ens_migrate.config.unknown_env", f"ens-migrate: warning: {warning}",
            level="warning")
    return config, settings


@dataclass(frozen=True, slots=True)
class Session:
    """A locked journal, folded, and the target it belongs to."""

    journal: Path
    target: Target
    ledger: Ledger


@contextlib.contextmanager
def journal_session(journal: Path, settings: RunSettings, *, simulate: bool, insecure_http: bool,
                    quiet: bool, verbose: bool = False, detail: bool = False, lock: bool = True,
                    stopped_early: Callable[[StoppedAtStartup, str | None], None] | None = None,
                    ) -> Iterator[Session]:
    """Lock the journal, open the target, configure logging, repair a torn tail, fold the ledger
    and check that it belongs to this target; unlock when the block ends.

    The lock comes first, so two commands never repair or fold one journal at once. A command
    that only reads (``lock=False``) neither locks nor repairs: a torn tail is skipped by the fold.
    A start-up stop (``StoppedAtStartup``) that passes through while the lock is held calls
    ``stopped_early`` first, still under the lock, with the target's name once it was checked
    against the journal (None before).
    """
    lock_fd = acquire_lock(journal) if lock else None
    checked: str | None = None
    try:
        with open_target(simulate=simulate, settings=settings, insecure_http=insecure_http,
                         journal=journal) as target:
            configure_logging(fmt=settings.log_format, quiet=quiet, verbose=verbose)
            if lock:
                repair_and_warn(journal)
            ledger = read_ledger(journal, detail=detail)
            target.check_journal(ledger, journal)
            checked = target.name
            yield Session(journal, target, ledger)
    except BaseException as exc:
        stop = startup_stop(exc)
        if stopped_early is not None and lock_fd is not None and stop is not None:
            stopped_early(stop, checked)
        raise
    finally:
        if lock_fd is not None:
            os.close(lock_fd)
