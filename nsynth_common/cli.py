"""What every command of the project does the same way.

* **Quiet by default.** TensorFlow's C++ start-up lines ("Unable to register
  cuFFT factory", "Could not find cuda drivers", TensorRT) read like errors on
  a CPU machine and say nothing a user can act on. Commands hide them, and
  Python's INFO logs, unless the user asks: absl's `--verbosity` (or `-v`)
  brings both back, and a `TF_CPP_MIN_LOG_LEVEL` the user set is respected.
* **One-line errors.** A bad flag, input or directory ends the command with
  `error: <what, naming the file or flag>` and exit status 1, not a traceback
  or a page of usage text; so does a full disk, naming the file it refused.
  Bugs still show their traceback.
* **Ctrl-C ends the command** with `interrupted` and status 130, once the
  library has cleaned up after itself (the Beam job deletes its version),
  however the interrupt reached it (Beam re-raises it from a worker as a
  RuntimeError) and whatever threads a library left running.

Importing this module changes nothing. A command's entry point is
`cli.run(define_flags, main)`: it quiets the logs, then defines and parses
the flags, then calls `main`. TensorFlow reads its log level once, when it
is imported, and since 2.20 it writes its start-up lines through absl's C++
logging before anything can set a level; so a command that runs TensorFlow
says so (`cli.run(..., tensorflow=True)`) and `cli.run` imports it, quietly,
before `main`. `main` maps the library's exceptions to one-line errors with
`one_line_errors`.
"""

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence

from absl import app
from absl import flags
from absl import logging as absl_logging

from nsynth_common import disk_space
from nsynth_common import native_stderr

# Said at import by libraries, about parts of them this project never uses.
_IMPORT_NOISE = (
    'apitools not found, and bigquery client libraries',  # apache_beam
)

# TensorFlow's C++ log threshold while quiet: 3 hides INFO, WARNING and the
# start-up ERROR lines; real failures still reach Python as exceptions.
_QUIET_TF_CPP_LEVEL = '3'


class UserError(Exception):
  """Anything a user can fix; the message says what and where."""


def _not_import_noise(record: logging.LogRecord) -> bool:
  return not any(noise in str(record.msg) for noise in _IMPORT_NOISE)


@contextlib.contextmanager
def logs_filtered(keep: Callable[[logging.LogRecord], bool],
                  logger_names: Sequence[str] = ('',)) -> Iterator[None]:
  """While inside, the records of these loggers (the root one by default)
  that `keep` refuses are dropped; `keep` may also rewrite a record."""
  loggers = [logging.getLogger(name) for name in logger_names]
  for logger in loggers:
    logger.addFilter(keep)
  try:
    yield
  finally:
    for logger in loggers:
      logger.removeFilter(keep)


def import_noise_filtered() -> contextlib.AbstractContextManager[None]:
  """While inside, what libraries log at import about parts of them this
  project never uses (Beam's "apitools not found") is dropped. For a
  command module that must import such a library at its top."""
  return logs_filtered(_not_import_noise)


def asked_for_verbosity(argv: Sequence[str]) -> bool:
  """Whether the command line sets absl's --verbosity/-v."""
  return any(arg in ('-v', '--verbosity') or
             arg.startswith(('--verbosity=', '-v=')) for arg in argv[1:])


def quiet_native_logs(argv: Sequence[str]) -> None:
  """Hides TensorFlow's C++ start-up noise; call before importing it."""
  if not asked_for_verbosity(argv):
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', _QUIET_TF_CPP_LEVEL)


def import_tensorflow_quietly() -> None:
  """Imports TensorFlow with its C++ start-up lines hidden, if logs are quiet.

  TensorFlow 2.21 logs "oneDNN custom operations are on" and "Could not find
  cuda drivers" through absl before absl's logging is initialised, where
  TF_CPP_MIN_LOG_LEVEL does not reach: only the file descriptor can be
  silenced. A no-op once TensorFlow is imported.
  """
  if 'tensorflow' in sys.modules:
    return
  with native_stderr_silenced():
    import tensorflow  # noqa: F401


def native_logs_quiet() -> bool:
  """Whether TensorFlow's C++ logs are to be hidden (TF_CPP_MIN_LOG_LEVEL
  of 2 or more, which `quiet_native_logs` sets unless told otherwise)."""
  return os.environ.get('TF_CPP_MIN_LOG_LEVEL', '0').strip() in ('2', '3')


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
  """While inside, C++ writes to stderr go nowhere, if logs are quiet.

  XLA logs its start-up ("XLA service ... initialized", "Compiled cluster
  using XLA!") through absl's C++ logging, which TF_CPP_MIN_LOG_LEVEL does
  not reach. Wrap only a short warm-up in this: it silences Python's stderr
  too, for every thread.
  """
  if not native_logs_quiet():
    yield
    return
  with native_stderr.discarded():
    yield


def quiet_python_logs(argv: Sequence[str]) -> None:
  """WARNING and above from Python's logging, unless --verbosity was given;
  never the import noise of libraries (for commands that import them in
  main)."""
  logging.getLogger().addFilter(_not_import_noise)
  if asked_for_verbosity(argv):
    return
  absl_logging.set_verbosity(absl_logging.WARNING)
  logging.getLogger().setLevel(logging.WARNING)
  # Library advice aimed at their own developers, not at our users.
  warnings.filterwarnings('ignore', category=DeprecationWarning)
  warnings.filterwarnings('ignore', category=FutureWarning)
  warnings.filterwarnings('ignore', module='keras')


@contextlib.contextmanager
def one_line_errors(*errors: type[BaseException]) -> Iterator[None]:
  """Inside, these exception types (a library's bad-input errors) become
  UserError: the command ends with their message in one line."""
  try:
    yield
  except errors as e:
    raise UserError(str(e)) from None


def no_arguments(argv: Sequence[str]) -> None:
  """Raises UserError for words after the flags of a command taking none."""
  if len(argv) > 1:
    raise UserError(f'unexpected arguments {list(argv[1:])}')


def fail(message: str) -> None:
  """Ends the command with a one-line error."""
  print(f'error: {message}', file=sys.stderr)
  sys.exit(1)


def interrupted(error: BaseException) -> bool:
  """Whether `error` is Ctrl-C, or an error a library raised for it."""
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if isinstance(error, KeyboardInterrupt) or str(error).startswith(
        'KeyboardInterrupt'):
      return True
    error = error.__cause__ or error.__context__
  return False


def _end(status: int) -> None:
  """Ends the process now: what a library left running (Beam's worker
  threads, files half-written) must not keep it alive or crash its exit."""
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(status)


def run(define_flags: Callable[[], None], main: Callable[[list[str]], None],
        user_errors: tuple[type[BaseException], ...] = (),
        argv: Sequence[str] | None = None,
        flags_parser: Callable[[list[str]], list[str]] | None = None,
        tensorflow: bool = False) -> None:
  """Runs an absl command: quiet logs, flags, one-line errors.

  Args:
    define_flags: defines the command's flags (only when it runs, so that
      importing a command module defines none).
    main: absl main, given the remaining argv.
    user_errors: exception types that mean bad input, shown in one line
      (those of libraries `main` imports itself it maps with
      one_line_errors).
    argv: the command line (default sys.argv).
    flags_parser: absl's flags_parser hook (the Beam job passes unknown flags
      on to Beam).
    tensorflow: the command runs TensorFlow: it is imported before `main`,
      its start-up lines hidden unless --verbosity is given.
  """
  argv = list(sys.argv if argv is None else argv)
  quiet_native_logs(argv)
  define_flags()
  parse = flags_parser or flags.FLAGS

  def parse_or_fail(args):
    try:
      return parse(args)
    except flags.Error as e:
      fail(f'{e} (--helpfull lists every flag)')

  def main_with_errors(remaining):
    quiet_python_logs(argv)
    if tensorflow:
      import_tensorflow_quietly()
    try:
      with one_line_errors(*user_errors):
        main(remaining)
    except UserError as e:
      fail(str(e))
    except BaseException as e:
      if interrupted(e):
        print('error: interrupted', file=sys.stderr, flush=True)
        _end(130)
      # A full disk is the machine's state, not a bug.
      if not isinstance(e, Exception) or not disk_space.is_disk_full(e):
        raise
      print(f'error: {disk_space.describe(e)}', file=sys.stderr, flush=True)
      # Files left half-written can be neither flushed nor closed, and the
      # libraries holding them try again as the interpreter exits: h5py
      # (Keras's weights) prints a page per try, then HDF5 crashes the exit
      # (SIGSEGV, status 139). The command is over: it ends here, status 1.
      _end(1)

  app.run(main_with_errors, argv=argv, flags_parser=parse_or_fail)
