"""Errors a user can cause and fix: the command line prints their message as one line.

Library code raises these for expected failures (a bad argument, a missing, empty,
corrupt or wrong-kind file, a checkpoint of another recipe). ``genmodels`` (see
:mod:`genmodels.cli`) prints ``genmodels <command>: <message>`` on stderr and exits with
:attr:`GenmodelsError.exit_code`; ``--debug`` or ``GENMODELS_DEBUG=1`` shows the
traceback. Messages name the file, row or field and say what to do.

The classes also derive from the built-in exception a Python caller would expect
(``ValueError``, ``FileNotFoundError``), so existing ``except`` clauses keep working.
"""

from __future__ import annotations


class GenmodelsError(Exception):
    """Base class: an expected failure with a message meant for the user."""

    exit_code = 1


class UsageError(GenmodelsError, ValueError):
    """A bad command-line argument or option value (exit code 2)."""

    exit_code = 2


class DataError(GenmodelsError, ValueError):
    """A data, sample or recipe file that is empty, unreadable or of the wrong kind."""


class MissingFileError(GenmodelsError, FileNotFoundError):
    """A file or folder that should exist does not."""


class CheckpointError(GenmodelsError, ValueError):
    """A checkpoint folder that is empty, truncated or written by another recipe/config."""


class TrainingInterrupted(GenmodelsError, KeyboardInterrupt):
    """Ctrl-C during training: the message says where it stopped and how to resume."""

    exit_code = 130

    def __init__(self, step: int, checkpoint_step: int | None, workdir: str | None = None):
        self.step = step
        self.checkpoint_step = checkpoint_step
        saved = (
            f"checkpoint at step {checkpoint_step}"
            if checkpoint_step is not None
            else "no checkpoint written yet"
        )
        super().__init__(f"interrupted at step {step} ({saved}); run the same command to resume")
