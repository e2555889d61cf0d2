"""Writing an output folder so that it only ever appears complete.

Folders on disk, all beside the output (same file system, so renames are
atomic):

- `<output>.incomplete-<random>`: the staging folder everything is written
  into. It is renamed to `<output>` once complete and deleted if writing
  fails; only a killed process leaves one behind, which can be deleted.
- `<output>.replaced-<random>`: with `overwrite`, the old `<output>` is moved
  into this folder (as `<output>.replaced-<random>/<output name>`) just
  before the staging folder takes its name, then deleted.

So `<output>` is either absent, the old folder untouched, or the complete new
one. Both folders are made with the umask's mode, like any folder the user
makes, so the published output is as readable as the user's other files (not
`tempfile.mkdtemp`'s 0700). An output that is, holds or lies inside an input
folder is never replaced (`protected_paths`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

from imagenet2012_local import errors
from imagenet2012_local.gate import protected_paths


class OutputExistsError(errors.Imagenet2012LocalError, FileExistsError):
  """The output folder exists and may not be replaced."""


def check_free(
    output_dir: Path, overwrite: bool, inputs: Sequence[Path] = ()
) -> None:
  """Fails early, before any work, when `output_dir` may not be written.

  Args:
    output_dir: The folder to publish.
    overwrite: Whether an existing `output_dir` may be replaced.
    inputs: The folders the command reads, which `output_dir` may not be,
      hold or lie inside, whatever `overwrite` says.

  Raises:
    protected_paths.InputFolderError: `output_dir` is, holds or is inside one
      of `inputs`, or holds an ImageNet archive.
    OutputExistsError: `output_dir` exists and `overwrite` is false.
  """
  protected_paths.refuse_to_delete(output_dir, inputs)
  if output_dir.exists() and not overwrite:
    raise OutputExistsError(errors.two_lines(
        f'{output_dir} exists; pass --overwrite to replace it',
        'With --overwrite it is replaced only once the new output is complete;'
        ' or choose another output folder.',
    ))


@contextlib.contextmanager
def staged(
    output_dir: Path, overwrite: bool, inputs: Sequence[Path] = ()
) -> Iterator[Path]:
  """A new staging folder, renamed to `output_dir` when the block succeeds.

  Creates the parent folders of `output_dir` if needed. If the block raises,
  the staging folder is deleted and `output_dir` left as it was. Call
  `check_free` first: the check here comes only once the work is done.

  Args:
    output_dir: The folder to publish.
    overwrite: Replace an existing `output_dir`, once the new one is complete.
    inputs: The folders the command reads (see `check_free`).

  Yields:
    The staging folder, `<output_dir>.incomplete-<random>`, empty.

  Raises:
    OutputExistsError: `output_dir` appeared while the block ran and
      `overwrite` is false; it is kept.
    protected_paths.InputFolderError: `output_dir` became one that
      `check_free` refuses while the block ran; it is kept.
  """
  output_dir.parent.mkdir(parents=True, exist_ok=True)
  staging = _sibling_temp_dir(output_dir, 'incomplete')
  try:
    yield staging
    _publish(staging, output_dir, overwrite, inputs)
  finally:
    shutil.rmtree(staging, ignore_errors=True)  # Gone already on success.


def _publish(
    staging: Path, output_dir: Path, overwrite: bool, inputs: Sequence[Path]
) -> None:
  """Renames the finished `staging` folder to `output_dir`."""
  if not output_dir.exists():
    os.replace(staging, output_dir)
    return
  if not overwrite:
    raise OutputExistsError(errors.two_lines(
        f'{output_dir} appeared while it was being written; kept it and'
        ' deleted what was written',
        'Something else writes that folder: move it away (or pass --overwrite)'
        ' and run again.',
    ))
  protected_paths.refuse_to_delete(output_dir, inputs)
  # Moved aside first: a rename cannot replace a non-empty folder.
  old = _sibling_temp_dir(output_dir, 'replaced')
  os.replace(output_dir, old / output_dir.name)
  os.replace(staging, output_dir)
  shutil.rmtree(old)


def _sibling_temp_dir(path: Path, tag: str) -> Path:
  """A new folder `<path>.<tag>-<random>` beside `path`: same file system.

  Made by `mkdir`, whose mode follows the umask: the staging folder becomes
  the output. With 64 random bits in the name, one already taken (which
  fails, FileExistsError) is practically impossible.
  """
  folder = path.parent / f'{path.name}.{tag}-{secrets.token_hex(8)}'
  folder.mkdir()
  return folder
