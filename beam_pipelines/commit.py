"""Moving a finished dataset into --output_dir, recoverable at every instant.

The pipeline writes a whole dataset into a staging directory inside the
output directory (`output.new_staging_dir`). Committing it replaces the
previous dataset (the files its manifest lists) by renames only, in order:

  1. the plan is written to `<staging>/.commit.json` (to a temporary name,
     synced, then renamed): from this instant the commit is decided;
  2. the previous dataset's files move into `<staging>/.replaced/`, its
     manifest first, so no manifest ever describes files that are gone;
  3. the new files move into place, the new manifest last;
  4. `.replaced/` is deleted, then the plan, then the staging directory.

At every instant both datasets can be put together from what is on disk:
until step 3 ends the new one lies whole across staging and the output
directory, and the old one across the output directory and `.replaced/`.
A run killed anywhere from 1 to 4 (SIGKILL, preemption, an OOM kill,
Ctrl-C) leaves its plan behind. The next run on the directory, holding its
lock, finds the plan and finishes the moves (rolls forward), or, if a file
the plan needs has gone, moves every file back where it came from (rolls
back); either way it says so in one line and goes on. Nothing that holds
the only copy of a complete dataset is deleted before the other dataset is
whole in its place.
"""

import contextlib
import dataclasses
import json
import os
import posixpath
import uuid

from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystems import FileSystems

from beam_pipelines import output
from nsynth_contracts import directory_lock
from nsynth_contracts import manifest as manifest_lib

_PLAN_FORMAT = 1


class CommitInterrupted(output.OutputDirError):
  """A commit could neither finish nor be undone; its plan is kept, and the
  next run on the directory recovers it. The message names the directory."""


@dataclasses.dataclass(frozen=True)
class CommitPlan:
  """Which staged file goes where, and which files it replaces.

  Paths are relative: `moves` to the staging directory (source) and the
  output directory (destination), `replaced` to the output directory.
  """
  staging_dir: str
  output_dir: str
  moves: tuple[tuple[str, str], ...]   # (staged, final name), manifest last
  replaced: tuple[str, ...]              # the previous dataset, manifest first

  @property
  def replaced_dir(self) -> str:
    return posixpath.join(self.staging_dir, output.REPLACED_DIR)

  def staged(self, name: str) -> str:
    return posixpath.join(self.staging_dir, name)

  def final(self, name: str) -> str:
    return posixpath.join(self.output_dir, name)

  def aside(self, name: str) -> str:
    return posixpath.join(self.replaced_dir, name)

  def to_json(self) -> str:
    return json.dumps({'format': _PLAN_FORMAT,
                       'moves': [list(m) for m in self.moves],
                       'replaced': list(self.replaced)}, indent=1)

  @classmethod
  def read(cls, staging_dir: str, output_dir: str) -> 'CommitPlan':
    """Raises ValueError (or OSError) when the plan cannot be read."""
    with FileSystems.open(posixpath.join(staging_dir,
                                         output.COMMIT_PLAN)) as f:
      data = json.loads(f.read())
    if not isinstance(data, dict) or data.get('format') != _PLAN_FORMAT:
      raise ValueError('not a commit plan of this job')
    moves = tuple((str(s), str(d)) for s, d in data['moves'])
    names = [name for move in moves for name in move] + list(data['replaced'])
    if any(not output.is_job_file_name(n) and
           n != manifest_lib.MANIFEST_FILENAME for n in names):
      raise ValueError('the plan names a file this job does not write')
    return cls(staging_dir, output_dir, moves,
               tuple(str(n) for n in data['replaced']))


def plan_commit(staging_dir: str, output_dir: str,
                previous: list[str]) -> CommitPlan:
  """The moves that put the staged dataset in place of `previous`.

  Raises:
    OutputDirError: a new file would replace one the previous run did not
      write, or the dead letters' directory is a file. Nothing is changed.
  """
  manifest_name = manifest_lib.MANIFEST_FILENAME
  staged = sorted(output.staged_files(staging_dir),
                  key=lambda n: n == manifest_name)
  if not staged or staged[-1] != manifest_name:
    raise RuntimeError(f'The pipeline wrote no manifest into {staging_dir}')
  moves = tuple((name, output.final_name(name)) for name in staged)
  replaced = tuple(posixpath.relpath(p, output_dir) for p in previous)
  dead_letters_dir = posixpath.join(output_dir, output.DEAD_LETTERS_DIR)
  if output.is_local(output_dir) and os.path.lexists(dead_letters_dir) and (
      not os.path.isdir(dead_letters_dir)):
    raise output.OutputDirError(
        f'{dead_letters_dir} exists and is not a directory, so the dead '
        f'letters cannot go there; move it or choose another --output_dir. '
        f'Nothing was changed.')
  for _, final in moves:
    path = posixpath.join(output_dir, final)
    if final not in replaced and FileSystems.exists(path):
      raise output.OutputDirError(
          f'{path} exists and was not written by the previous run of this '
          f'job, so it is not replaced; move it or choose another '
          f'--output_dir. Nothing was changed.')
  return CommitPlan(staging_dir, output_dir, moves, replaced)


def commit(staging_dir: str, output_dir: str, previous: list[str]
           ) -> list[str]:
  """Moves the staged dataset into `output_dir` in place of `previous`.

  Returns:
    The final paths of the committed files.

  Raises:
    OutputDirError: the commit cannot be made; the output directory is as
      it was (see plan_commit), or a move failed and was undone.
    CommitInterrupted: a move failed and could not be undone; the plan is
      kept for the next run.
  """
  plan = plan_commit(staging_dir, output_dir, previous)
  try:
    _write_plan(plan)
  except (OSError, BeamIOError) as e:
    _remove_plan(plan)
    raise output.OutputDirError(
        f'cannot write into {staging_dir} ({_reason(e)}); the output '
        f'directory was left as it was') from None
  try:
    _roll_forward(plan)
  except (OSError, BeamIOError) as e:
    what_failed = (f'cannot move the new dataset into {output_dir} '
                   f'({_reason(e)})')
    _undo(plan, what_failed)
    raise output.OutputDirError(f'{what_failed}; the commit was undone and '
                                f'{output_dir} was left as it was') from None
  return [plan.final(final) for _, final in plan.moves]


def recover(output_dir: str) -> list[str]:
  """Finishes or undoes the commits that killed runs left in `output_dir`.

  Call it holding the directory's lock, so that no live run owns a plan.

  Returns:
    One line per recovered commit, saying what was done, for the caller
    to show (once: in its refusal, or before it goes on).

  Raises:
    CommitInterrupted: a commit can be neither finished nor undone; nothing
      more was changed, and the message says where each dataset is.
  """
  said = []
  for name in output.list_names(output_dir):
    if not output.is_staging_name(name):
      continue
    staging_dir = posixpath.join(output_dir, name.rstrip('/'))
    if FileSystems.exists(posixpath.join(staging_dir, output.COMMIT_PLAN)):
      said.append(_recover_planned(staging_dir, output_dir))
    elif output.holds_replaced_files(staging_dir):
      said.append(_restore_unplanned(staging_dir, output_dir))
  return said


def _recover_planned(staging_dir: str, output_dir: str) -> str:
  try:
    plan = CommitPlan.read(staging_dir, output_dir)
  except (ValueError, KeyError, TypeError, OSError, BeamIOError) as e:
    raise CommitInterrupted(
        f'{staging_dir} holds the plan of an interrupted commit that cannot '
        f'be read ({_reason(e)}); the previous dataset is in '
        f'{output_dir} and {posixpath.join(staging_dir, output.REPLACED_DIR)}'
        f': move what you need out of them, then remove {staging_dir}'
        ) from None
  if _new_dataset_in_place(plan) or all(
      _staged_or_moved(plan, staged, final) for staged, final in plan.moves):
    _roll_forward(plan)
    return (f'An earlier run was killed while committing its dataset into '
            f'{output_dir}; its commit was completed (rolled forward), so '
            f'{output_dir} holds that run\'s new dataset.')
  _undo(plan, f'a file of the new dataset is missing from {staging_dir}')
  return (f'An earlier run was killed while committing its dataset into '
          f'{output_dir}, and part of its new dataset was gone; the commit '
          f'was undone (rolled back), so {output_dir} holds the previous '
          f'dataset again.')


def _new_dataset_in_place(plan: CommitPlan) -> bool:
  """Whether the new manifest, moved last, has been moved: from then on only
  the cleanup is left (which may already have removed files aside)."""
  manifest_staged, manifest_final = plan.moves[-1]
  return (not FileSystems.exists(plan.staged(manifest_staged)) and
          FileSystems.exists(plan.final(manifest_final)))


def _staged_or_moved(plan: CommitPlan, staged: str, final: str) -> bool:
  return FileSystems.exists(plan.staged(staged)) or _moved_in(plan, staged,
                                                               final)


def _moved_in(plan: CommitPlan, staged: str, final: str) -> bool:
  """Whether the new file is at its final place (where an old file of the
  same name stays until it has been moved aside)."""
  return (not FileSystems.exists(plan.staged(staged)) and
          FileSystems.exists(plan.final(final)) and
          (final not in plan.replaced or FileSystems.exists(plan.aside(final))))


def _write_plan(plan: CommitPlan) -> None:
  path = posixpath.join(plan.staging_dir, output.COMMIT_PLAN)
  temporary = f'{path}.{uuid.uuid4().hex[:8]}.tmp'
  with FileSystems.create(temporary) as f:
    f.write(plan.to_json().encode('utf-8'))
  _sync(temporary)
  FileSystems.rename([temporary], [path])
  _sync(plan.staging_dir)


def _remove_plan(plan: CommitPlan) -> None:
  for name in output.list_names(plan.staging_dir):
    if name.startswith(output.COMMIT_PLAN):
      with contextlib.suppress(OSError, BeamIOError):
        output.delete(posixpath.join(plan.staging_dir, name))


def _roll_forward(plan: CommitPlan) -> None:
  """Does what is left of the plan; each step may be done already."""
  if not _new_dataset_in_place(plan):
    moved_in = {final for staged, final in plan.moves
                if _moved_in(plan, staged, final)}
    for name in plan.replaced:
      if name not in moved_in and not FileSystems.exists(plan.aside(name)) \
          and FileSystems.exists(plan.final(name)):
        _move(plan.final(name), plan.aside(name))
    _sync(plan.output_dir)
    for staged, final in plan.moves:
      if FileSystems.exists(plan.staged(staged)):
        _move(plan.staged(staged), plan.final(final))
    _sync(plan.output_dir)
  # The new dataset is whole in place: only now may the old one go.
  if FileSystems.exists(plan.replaced_dir):
    output.delete(plan.replaced_dir)
  _remove_plan(plan)
  output.discard(plan.staging_dir)
  if not any(posixpath.dirname(f) == output.DEAD_LETTERS_DIR
             for _, f in plan.moves):
    output.remove_if_empty(posixpath.join(plan.output_dir,
                                          output.DEAD_LETTERS_DIR))


def _roll_back(plan: CommitPlan) -> None:
  """Puts every file back where it was before the commit began."""
  for staged, final in reversed(plan.moves):
    if _moved_in(plan, staged, final):
      _move(plan.final(final), plan.staged(staged))
  for name in plan.replaced:
    if FileSystems.exists(plan.aside(name)) and not FileSystems.exists(
        plan.final(name)):
      _move(plan.aside(name), plan.final(name))
  _sync(plan.output_dir)
  if output.holds_replaced_files(plan.staging_dir):
    raise OSError(f'files of the previous dataset are still in '
                  f'{plan.replaced_dir}')
  _remove_plan(plan)


def _undo(plan: CommitPlan, what_failed: str) -> None:
  """Rolls back; if even that fails, keeps the plan and raises
  CommitInterrupted saying where each dataset is."""
  try:
    _roll_back(plan)
  except (OSError, BeamIOError) as e:
    raise CommitInterrupted(
        f'{what_failed}, and undoing the commit failed too ({_reason(e)}). '
        f'Nothing was deleted: the previous dataset is in {plan.output_dir} '
        f'and {plan.replaced_dir}, the new one in {plan.output_dir} and '
        f'{plan.staging_dir}; the next run on {plan.output_dir} completes '
        f'or undoes the commit') from None


def _restore_unplanned(staging_dir: str, output_dir: str) -> str:
  """A staging directory holding a previous dataset but no plan (left by
  versions of this job that wrote none): its files go back in place."""
  replaced_dir = posixpath.join(staging_dir, output.REPLACED_DIR)
  kept = []
  for name in output.files_under(replaced_dir):
    final = posixpath.join(output_dir, name)
    if FileSystems.exists(final):
      kept.append(name)
    else:
      _move(posixpath.join(replaced_dir, name), final)
  if kept:
    raise CommitInterrupted(
        f'{replaced_dir} holds files of a previous dataset ({kept[0]}, ...) '
        f'whose places in {output_dir} are taken; nothing was deleted: move '
        f'what you need out of it, then remove {staging_dir}')
  output.discard(staging_dir)
  return (f'An earlier run was killed while committing into {output_dir}; '
          f'the previous dataset it had moved aside was put back.')


def _move(source: str, destination: str) -> None:
  parent = posixpath.dirname(destination)
  if not FileSystems.exists(parent):
    FileSystems.mkdirs(parent)
  FileSystems.rename([source], [destination])


def _sync(path: str) -> None:
  """Makes a local file, or a directory's entries, durable: the order of
  renames must survive a power loss, not only a killed process."""
  if directory_lock.is_remote(path) or not os.path.exists(path):
    return
  fd = os.open(path, os.O_RDONLY)
  try:
    os.fsync(fd)
  finally:
    os.close(fd)


def _reason(error: BaseException) -> str:
  if isinstance(error, BeamIOError) and getattr(error, 'exception_details',
                                                None):
    error = next(iter(error.exception_details.values()))
  if isinstance(error, OSError) and error.strerror:
    return error.strerror
  return str(error) or type(error).__name__
