"""Times a resumed build against a full one: `python -m bench.resume --help`.

On a benchmark archive set (written by `python -m bench.run ... --prepare-only`),
with the archives evicted from the page cache before each run and every run
in a memory cgroup of `--cache-limit` GB: a full `tfds build` (gate off), then
a build killed (SIGKILL) once `--kill-at` of its shards are finished, then the
same command again, which resumes. Prints the times, the shards kept, whether
every kept shard was published as it was (same inode: not rewritten), and
whether the resumed dataset equals the full build's, byte for byte.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench import cgroup
from bench import page_cache
from imagenet2012_local.engine import resume
from imagenet2012_local import settings

_TFDS = str(Path(sys.executable).parent / 'tfds')
_VERSION = Path('imagenet2012_local') / '5.1.0'


def _build_argv(archives: Path, data_dir: Path) -> list[str]:
  return [_TFDS, 'build', 'imagenet2012_local', '--imports=imagenet2012_local',
          f'--manual_dir={archives}', f'--data_dir={data_dir}']


def _env(archives: Path, cache_dir: Path) -> dict[str, str]:
  return {
      **os.environ,
      settings.VERIFY_ENV_VAR: '0',
      settings.EXTRA_TABLES_ENV_VAR: str(archives / 'checksums.tsv'),
      settings.CACHE_DIR_ENV_VAR: str(cache_dir),
  }


def _tars(archives: Path) -> list[Path]:
  return sorted(archives.glob('ILSVRC2012_img_*.tar'))


def _timed(
    argv: list[str],
    env: dict[str, str],
    limit_bytes: int,
    archives: Path,
    kill_when: Callable[[], bool] | None = None,
) -> tuple[float, str]:
  """Seconds a cold, capped run took, and its stderr; it is killed once
  `kill_when()` is true."""
  page_cache.evict(_tars(archives))
  with cgroup.MemoryCgroup(limit_bytes) as group:
    start = time.monotonic()
    process = subprocess.Popen(group.wrap(argv), env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if kill_when:
      while process.poll() is None and not kill_when():
        time.sleep(0.05)
      process.send_signal(signal.SIGKILL)
    _, stderr = process.communicate()
    seconds = time.monotonic() - start
  if not kill_when and process.returncode:
    raise SystemExit(f'build failed:\n{stderr[-3000:]}')
  return seconds, stderr


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--archives', type=Path, required=True,
                      help='A folder written by bench.run (the archives and checksums.tsv).')
  parser.add_argument('--workdir', type=Path, required=True)
  parser.add_argument('--cache-limit', type=float, default=3.5, metavar='GB')
  parser.add_argument('--kill-at', type=float, default=0.7,
                      help='Fraction of shards finished when the build is killed.')
  args = parser.parse_args()
  limit = int(args.cache_limit * 2**30)
  full_dir, resumed_dir = args.workdir / 'full', args.workdir / 'resumed'
  for folder in (full_dir, resumed_dir):
    shutil.rmtree(folder, ignore_errors=True)
  cache = args.workdir / 'cache'
  shutil.rmtree(cache, ignore_errors=True)
  env = _env(args.archives, cache)

  full, _ = _timed(_build_argv(args.archives, full_dir), env, limit, args.archives)
  shards = len(list((full_dir / _VERSION).glob('*.tfrecord-*')))
  # The full build left the archives' indexes in the cache: start the resumed
  # one without them, as an interrupted first build would.
  shutil.rmtree(cache)
  kept_dir = resumed_dir / 'imagenet2012_local' / f'5.1.0{resume.FOLDER_SUFFIX}'
  wanted = int(shards * args.kill_at)
  _timed(_build_argv(args.archives, resumed_dir), env, limit, args.archives,
         kill_when=lambda: len(list(kept_dir.glob('*.kept.json'))) >= wanted)
  kept = {p.name.removesuffix('.kept.json'): (kept_dir / p.name.removesuffix('.kept.json')).stat().st_ino
          for p in kept_dir.glob('*.kept.json')}
  rerun, rerun_log = _timed(_build_argv(args.archives, resumed_dir), env, limit, args.archives)
  published = resumed_dir / _VERSION
  not_rewritten = all((published / name).stat().st_ino == ino for name, ino in kept.items())
  shard_files = sorted(p.name for p in (full_dir / _VERSION).glob('*.tfrecord-*'))
  same = filecmp.cmpfiles(full_dir / _VERSION, published, shard_files, shallow=False)[0] == shard_files
  resuming = [line for line in rerun_log.splitlines() if 'resuming:' in line]
  print(f'full build: {full:.1f} s ({shards} shards)')
  print(f'killed with {len(kept)} of {shards} shards finished ({len(kept) / shards:.0%})')
  print(f'rerun: {rerun:.1f} s = {rerun / full:.2f} x the full build')
  print(f'kept shards published as they were (same inode): {not_rewritten}')
  print(f'shards byte-identical to the full build: {same}')
  print(f'leftovers beside the version: {sorted(p.name for p in (resumed_dir / "imagenet2012_local").iterdir())}')
  print('\n'.join(resuming))
  shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == '__main__':
  main()
