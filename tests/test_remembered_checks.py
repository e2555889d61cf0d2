"""A remembered check (a verified archive, an archive's index, a kept shard)
holds only for the very bytes it was made on: any change to the file, even
with its modification time set back (`touch -r`, `cp -p`, rsync), undoes it."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest

from imagenet2012_local.sources import direct_reads
from imagenet2012_local.sources import index_cache
from imagenet2012_local import paths
from imagenet2012_local.engine import resume
from imagenet2012_local.gate import verification
from tests.helpers import (
    DEVKIT,
    NAME,
    VAL_TAR,
    build,
    failed_build,
    manual_dir_with,
    metadata,
    read_split,
    tar_images,
    tar_members,
)


def _times(path: Path) -> tuple[int, int]:
  stat = os.stat(path)
  return stat.st_atime_ns, stat.st_mtime_ns


def _flip_a_byte_in_place(path: Path) -> None:
  """One byte inside an image changed, in place; the times set back."""
  times = _times(path)
  with open(path, 'r+b') as f:
    f.seek(os.path.getsize(path) // 2)
    byte = f.read(1)
    f.seek(-1, os.SEEK_CUR)
    f.write(bytes([byte[0] ^ 0xFF]))
  os.utime(path, ns=times)


def _copy_over_preserving_times(path: Path) -> None:
  """`cp -p` of a changed copy over the file: the same inode, rewritten."""
  changed = path.with_name('changed')
  shutil.copy2(path, changed)
  _flip_a_byte_in_place(changed)
  shutil.copy2(changed, path)
  os.utime(path, ns=_times(changed))


def _move_over_preserving_times(path: Path) -> None:
  """`rsync` or `mv` of a changed copy into place: another inode, same times."""
  changed = path.with_name('changed')
  shutil.copy2(path, changed)
  _flip_a_byte_in_place(changed)
  os.replace(changed, path)


CHANGES = [_flip_a_byte_in_place, _copy_over_preserving_times, _move_over_preserving_times]


def _refuse_hashing(monkeypatch) -> None:
  def refuse(path):
    raise AssertionError(f'{path} hashed again')

  monkeypatch.setattr(direct_reads, 'pieces', refuse)


def _published_metadata(data_dir: Path) -> dict[str, bytes]:
  version = next(data_dir.glob(f'{NAME}/*/metadata.json')).parent
  return {
      name: (version / name).read_bytes()
      for name in ('metadata.json', 'dataset_info.json')
  }


def test_an_unchanged_archive_is_not_hashed_again_and_the_metadata_is_the_same(
    tmp_path, monkeypatch, caplog
):
  manual = manual_dir_with(tmp_path, VAL_TAR, DEVKIT)
  build(manual, tmp_path / 'first')
  _refuse_hashing(monkeypatch)
  with caplog.at_level(logging.INFO, logger=verification.__name__):
    build(manual, tmp_path / 'second')
  assert _published_metadata(tmp_path / 'second') == _published_metadata(
      tmp_path / 'first'
  )
  assert metadata(tmp_path / 'second')['archives'][VAL_TAR]['status'] == 'verified'
  assert (
      f'{manual / VAL_TAR}: verified by an earlier build and unchanged since;'
      ' not hashed again.'
  ) in caplog.messages


@pytest.mark.parametrize('change', CHANGES)
def test_a_changed_archive_with_its_times_set_back_is_hashed_and_caught(
    tmp_path, change
):
  manual = manual_dir_with(tmp_path, VAL_TAR)
  build(manual, tmp_path / 'first')
  before = os.stat(manual / VAL_TAR)
  change(manual / VAL_TAR)
  after = os.stat(manual / VAL_TAR)
  assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
  what, _ = failed_build(manual, tmp_path / 'second', verification.ChecksumError)
  assert f'{manual / VAL_TAR} has ' in what


@pytest.mark.parametrize(
    'touch',
    [
        lambda path: os.utime(path, ns=_times(path)),  # Times set to themselves.
        lambda path: os.chmod(path, 0o644 if path.stat().st_mode & 0o2 else 0o646),
    ],
    ids=['utime', 'chmod'],
)
def test_any_change_to_the_file_makes_the_next_build_hash_it(tmp_path, touch):
  manual = manual_dir_with(tmp_path, VAL_TAR)
  build(manual, tmp_path / 'first')
  assert not verification.ArchiveCheck(manual / VAL_TAR, enabled=True).needs_hashing
  touch(manual / VAL_TAR)
  assert verification.ArchiveCheck(manual / VAL_TAR, enabled=True).needs_hashing
  build(manual, tmp_path / 'second')  # Hashed again, the same bytes: verified.
  assert _published_metadata(tmp_path / 'second') == _published_metadata(
      tmp_path / 'first'
  )


def _grow_a_member_in_place(path: Path) -> tuple[str, int]:
  """Makes an image member `grow` bytes longer by its tar header alone (its
  block's padding, zeros, becomes image bytes): the archive keeps its size;
  the times are set back. Returns the member's name and growth."""
  times = _times(path)
  data = bytearray(path.read_bytes())
  member = next(m for m in tar_members(bytes(data)) if 16 <= -m.size % 512)
  grow = 16
  header = member.offset
  data[header + 124 : header + 136] = f'{member.size + grow:011o}\0'.encode()
  data[header + 148 : header + 156] = b' ' * 8
  data[header + 148 : header + 156] = f'{sum(data[header : header + 512]):06o}\0 '.encode()
  with open(path, 'r+b') as f:  # In place: the same inode.
    f.write(data)
  os.utime(path, ns=times)
  return member.name, grow


def test_an_archive_changed_with_its_times_set_back_is_indexed_again(tmp_path):
  manual = manual_dir_with(tmp_path, VAL_TAR)
  build(manual, tmp_path / 'first', verify_checksums=False)
  size = (manual / VAL_TAR).stat().st_size
  name, grow = _grow_a_member_in_place(manual / VAL_TAR)
  assert (manual / VAL_TAR).stat().st_size == size
  assert index_cache.load(paths.absolute(manual / VAL_TAR)) is None
  build(manual, tmp_path / 'second', verify_checksums=False)
  published = read_split(tmp_path / 'second', 'validation')[name][1]
  assert published == tar_images(manual / VAL_TAR)[name][1]
  assert published.endswith(bytes(grow))  # The member as it is now.


def _kept_shard(folder: Path) -> tuple[resume.KeptShards, str]:
  """A kept-shards folder holding one finished, recorded shard."""
  kept = resume.KeptShards(folder)
  kept.partial_path('shard').write_bytes(bytes(range(256)) * 4)
  kept.finish('shard', 'key', _result(1024))
  return kept, 'shard'


def _result(num_bytes: int) -> dict[str, object]:
  return {
      'split': 'validation',
      'index': 0,
      'num_examples': 3,
      'num_bytes': num_bytes,
      'fixed_images': {},
      'skipped_images': {},
  }


@pytest.mark.parametrize('change', CHANGES)
def test_a_kept_shard_changed_with_its_times_set_back_is_not_reused(tmp_path, change):
  kept, name = _kept_shard(tmp_path / 'kept')
  assert kept.reusable(name, 'key') is not None
  change(Path(kept.folder / name))
  assert kept.reusable(name, 'key') is None
  assert kept.count([(name, 'key')]) == (0, 0)


def test_a_kept_shard_published_by_a_link_stays_reusable(tmp_path):
  """Publishing links a kept shard (which sets its change time); a build
  killed after that still resumes from it."""
  kept, name = _kept_shard(tmp_path / 'kept')
  kept.publish(os.fspath(kept.folder / name), os.fspath(tmp_path / 'out' / name))
  assert os.stat(tmp_path / "out" / name).st_ino == os.stat(kept.folder / name).st_ino
  assert kept.reusable(name, 'key') is not None
