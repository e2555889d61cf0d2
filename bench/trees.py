"""The extracted tree of an archive set, for the folder-input variants.

`<workdir>/tree-<archive set>/` holds what the old recipe extracts:
`train/<wnid>/<wnid>_<n>.JPEG` and `validation/ILSVRC2012_val_<8 digits>.JPEG`,
each file the archive member's bytes. Written once (a `.done` marker beside
it says it is complete), read by every later run.
"""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

from bench import archives as bench_archives


def ensure_tree(archive_set: bench_archives.ArchiveSet) -> Path:
  """The extracted tree of `archive_set`, written if not there yet."""
  tree = archive_set.directory.parent / f'tree-{archive_set.directory.name}'
  done = tree.with_name(tree.name + '.done')
  if done.exists():
    return tree
  shutil.rmtree(tree, ignore_errors=True)
  with tarfile.open(archive_set.train) as outer:
    for inner_member in outer:
      wnid = inner_member.name.removesuffix('.tar')
      folder = tree / 'train' / wnid
      folder.mkdir(parents=True)
      with tarfile.open(fileobj=outer.extractfile(inner_member)) as inner:
        for member in inner:
          (folder / member.name).write_bytes(inner.extractfile(member).read())
  folder = tree / 'validation'
  folder.mkdir(parents=True)
  with tarfile.open(archive_set.val) as val:
    for member in val:
      (folder / member.name).write_bytes(val.extractfile(member).read())
  done.touch()
  return tree


def tree_files(tree: Path) -> list[Path]:
  """Every file of `tree`."""
  return [path for path in tree.rglob('*') if path.is_file()]
