"""Interrupted builds resume: finished shards are kept, checked and reused.

Each build runs in a subprocess that kills itself (SIGKILL, so nothing of
the build's own cleanup runs) at a chosen point (`tests.interrupted_build`);
the rerun must publish exactly what an uninterrupted build publishes.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from imagenet2012_local.engine import resume
from imagenet2012_local import settings
from imagenet2012_local.engine import shard_writer
from tests.helpers import DUMMY_DIR
from tests.interrupted_build import KILL_POINTS

_ROOT = Path(__file__).resolve().parent.parent
_BEAM = ('--runner=DirectRunner', '--direct_running_mode=in_memory')
_SHARDS = 12  # 4 per split: see tests/interrupted_build.py.


def _run(data_dir: Path, point: str, *flags: str, **env: str):
  """Runs one build (killed at `point`, or to the end for 'none')."""
  return subprocess.run(
      [sys.executable, '-m', 'tests.interrupted_build', str(data_dir), point, *flags],
      cwd=_ROOT,
      env={**os.environ, **env},
      capture_output=True,
      text=True,
      timeout=600,
  )


def _published(data_dir: Path) -> dict[str, bytes]:
  """The published files, but the build's time (the metadata is the same
  whether the rerun hashed the archives or remembered the killed build's)."""
  return {
      f.name: f.read_bytes()
      for f in (data_dir / 'imagenet2012_local' / '5.1.0').iterdir()
      if f.name != 'build_stats.json'
  }


def _leftovers(data_dir: Path) -> list[str]:
  """What is in the dataset's folder besides the published version."""
  return sorted(p.name for p in (data_dir / 'imagenet2012_local').iterdir() if p.name != '5.1.0')


def _kept_folder(data_dir: Path) -> Path:
  return data_dir / 'imagenet2012_local' / f'5.1.0{resume.FOLDER_SUFFIX}'


def _kept_inodes(data_dir: Path) -> dict[str, int]:
  """The recorded kept shards (finished and flushed)."""
  return {
      f.name.removesuffix('.kept.json'): (
          f.parent / f.name.removesuffix('.kept.json')
      ).stat().st_ino
      for f in _kept_folder(data_dir).glob('imagenet2012_local-*.kept.json')
  }


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory) -> dict[str, bytes]:
  data_dir = tmp_path_factory.mktemp('uninterrupted')
  done = _run(data_dir, 'none')
  assert done.returncode == 0, done.stderr
  return _published(data_dir)


@pytest.fixture(autouse=True)
def _shared_cache(tmp_path, monkeypatch):
  """The killed build and its rerun share one verified-archives cache; every
  finished shard is flushed and recorded at once (the dummy shards are tiny:
  by default none would be recorded before the kill)."""
  monkeypatch.setenv(settings.CACHE_DIR_ENV_VAR, str(tmp_path / 'cache'))
  monkeypatch.setenv(settings.SYNC_EVERY_MB_ENV_VAR, '0')


def _killed(data_dir: Path, point: str, *flags: str, **env: str) -> dict[str, int]:
  killed = _run(data_dir, point, *flags, **env)
  assert killed.returncode == -signal.SIGKILL, killed.stderr
  assert not (data_dir / 'imagenet2012_local' / '5.1.0').exists()
  return _kept_inodes(data_dir)


@pytest.mark.parametrize('workers', ['1', '2'])
@pytest.mark.parametrize('point', list(KILL_POINTS))
def test_a_killed_build_resumes_to_the_same_bytes(
    tmp_path, uninterrupted, point, workers
):
  kept = _killed(tmp_path, point, **{settings.WORKERS_ENV_VAR: workers})
  rerun = _run(tmp_path, 'none', **{settings.WORKERS_ENV_VAR: workers})
  assert rerun.returncode == 0, rerun.stderr
  assert _published(tmp_path) == uninterrupted
  assert _leftovers(tmp_path) == []  # No kept shards, no incomplete.* folder.
  if kept:
    assert f'resuming: {len(kept)} of {_SHARDS} shards kept' in rerun.stderr
  published = tmp_path / 'imagenet2012_local' / '5.1.0'
  # Kept shards are published as they are, not written again.
  assert {name: (published / name).stat().st_ino for name in kept} == kept


def test_shards_finished_before_the_kill_are_kept(tmp_path):
  kept = _killed(tmp_path, 'after-some-shards')
  assert len(kept) == 5
  assert (_kept_folder(tmp_path) / 'README.txt').read_text().startswith('Shards of an')


@pytest.mark.parametrize(
    'touch',
    [
        lambda path: os.utime(path),  # Same bytes, new mtime.
        # Same bytes, same mtime: a new inode change time.
        lambda path: os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns)),
    ],
    ids=['new-mtime', 'mtime-set-back'],
)
def test_a_changed_archive_rewrites_its_shards(tmp_path, uninterrupted, touch):
  manual = tmp_path / 'manual'
  shutil.copytree(DUMMY_DIR, manual)
  kept = _killed(tmp_path / 'data', 'after-some-shards', MANUAL_DIR=str(manual))
  assert sum(name.startswith('imagenet2012_local-train') for name in kept) == 4
  touch(manual / 'ILSVRC2012_img_train.tar')
  rerun = _run(tmp_path / 'data', 'none', MANUAL_DIR=str(manual))
  assert rerun.returncode == 0, rerun.stderr
  assert 'resuming: 1 of 12 shards kept' in rerun.stderr  # The validation one.
  assert _published(tmp_path / 'data') == uninterrupted


def _cut_last_byte(path: Path) -> None:
  path.write_bytes(path.read_bytes()[:-1])


def _flip_a_byte_with_mtime_set_back(path: Path) -> None:
  stat = os.stat(path)
  data = bytearray(path.read_bytes())
  data[len(data) // 2] ^= 0xFF
  path.write_bytes(bytes(data))
  os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


@pytest.mark.parametrize('damage', [_cut_last_byte, _flip_a_byte_with_mtime_set_back])
def test_a_damaged_kept_shard_is_rewritten(tmp_path, uninterrupted, damage):
  kept = _killed(tmp_path, 'after-some-shards')
  damaged = _kept_folder(tmp_path) / sorted(kept)[0]
  damage(damaged)
  rerun = _run(tmp_path, 'none')
  assert f'resuming: {len(kept) - 1} of 12 shards kept' in rerun.stderr
  assert f'Ignoring {damaged}.kept.json (its shard changed since it was recorded)' in rerun.stderr
  assert _published(tmp_path) == uninterrupted


def test_a_changed_plan_rewrites_every_shard(tmp_path):
  _killed(tmp_path, 'after-some-shards')
  rerun = _run(tmp_path, 'none', **{settings.SKIP_BAD_IMAGES_ENV_VAR: '1'})
  assert rerun.returncode == 0, rerun.stderr
  assert 'resuming' not in rerun.stderr
  assert not _kept_folder(tmp_path).exists()


def test_resume_off_starts_afresh(tmp_path, uninterrupted):
  _killed(tmp_path, 'after-some-shards')
  rerun = _run(tmp_path, 'none', **{settings.RESUME_ENV_VAR: '0'})
  assert rerun.returncode == 0, rerun.stderr
  assert 'resuming' not in rerun.stderr
  assert _published(tmp_path) == uninterrupted


def test_a_beam_build_resumes(tmp_path, uninterrupted):
  kept = _killed(tmp_path, 'sixth-shard-finishing', *_BEAM)
  assert len(kept) == 5
  rerun = _run(tmp_path, 'none', *_BEAM)
  assert rerun.returncode == 0, rerun.stderr
  assert f'resuming: {len(kept)} of 12 shards kept' in rerun.stderr
  assert _published(tmp_path) == uninterrupted


def test_by_default_finished_shards_wait_to_be_flushed_together(tmp_path, monkeypatch):
  # One sync per GB of finished shards: the dummy build's few KB are all
  # still waiting when it is killed, so none is recorded, and none reused.
  monkeypatch.delenv(settings.SYNC_EVERY_MB_ENV_VAR)
  assert not _killed(tmp_path, 'after-some-shards')  # Not recorded,
  finished = [
      f
      for f in _kept_folder(tmp_path).glob('imagenet2012_local-*')
      if not f.name.endswith(('.json', '.partial'))
  ]
  assert len(finished) >= 5  # though written and renamed.
  rerun = _run(tmp_path, 'none')
  assert rerun.returncode == 0 and 'resuming' not in rerun.stderr


def _finish_shards(kept: resume.KeptShards, count: int, size: int) -> list[str]:
  """Writes, finishes and hands `count` shards of `size` bytes to `kept`."""
  names = []
  for i in range(count):
    name = f'shard-{i}'
    kept.partial_path(name).write_bytes(bytes(size))
    result = dataclasses.asdict(shard_writer.ShardResult(
        split='train', index=i, num_examples=1, num_bytes=size, fixed_images={}
    ))
    kept.finish(name, f'key-{i}', result)
    kept.add_finished(name, f'key-{i}', result)
    names.append(name)
  return names


def test_a_batch_is_flushed_while_the_build_goes_on(tmp_path, monkeypatch):
  monkeypatch.setenv(settings.SYNC_EVERY_MB_ENV_VAR, '1')
  syncing, may_end = threading.Event(), threading.Event()

  def slow_sync() -> None:
    syncing.set()
    assert may_end.wait(60)

  monkeypatch.setattr(os, 'sync', slow_sync)
  kept = resume.KeptShards(tmp_path / 'kept', flush_in_batches=True)
  # The first shard fills a batch: its sync starts and holds; the next two
  # shards are handed over meanwhile, and nothing is recorded before a sync.
  names = _finish_shards(kept, 3, 1 << 20)
  assert syncing.wait(60)
  assert not list((tmp_path / 'kept').glob('*.kept.json'))
  may_end.set()
  kept.record_finished()
  assert all(kept.reusable(name, f'key-{i}') for i, name in enumerate(names))


def test_a_failed_flush_fails_the_build(tmp_path, monkeypatch):
  monkeypatch.setenv(settings.SYNC_EVERY_MB_ENV_VAR, '1')

  def full_disk(*_) -> None:
    raise OSError(28, 'No space left on device')

  monkeypatch.setattr(resume.KeptShards, '_write_record', full_disk)
  kept = resume.KeptShards(tmp_path / 'kept', flush_in_batches=True)
  with pytest.raises(OSError, match='No space left'):
    _finish_shards(kept, 3, 1 << 20)
    kept.record_finished()
