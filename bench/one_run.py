"""One variant run once: a fresh data dir, the page cache and cgroups set up
as the run's conditions say (`--cold`, `--cache-limit`, the read limit), the
command timed and measured, and one row of results."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

from bench import archives as bench_archives
from bench import cgroup
from bench import measure
from bench import page_cache
from bench import throttle
from bench import trees
from bench.variants import command, command_template, environment, setup_command
from imagenet2012_local.paths import BUILD_STATS_FILE


def read_limit(args: argparse.Namespace) -> throttle.ReadLimit | None:
  """The run's read limit (`--read-iops`, `--read-mbs`); None: unlimited."""
  if not (args.read_iops or args.read_mbs):
    return None
  return throttle.ReadLimit(
      args.read_iops, int(args.read_mbs * 1e6) if args.read_mbs else None
  )


def read_throttle(
    args: argparse.Namespace,
    archives: Path,
    memory: cgroup.MemoryCgroup | None,
) -> contextlib.AbstractContextManager[throttle.ReadThrottle | None]:
  """The group that limits reads of `archives`' disk as `args` say, for
  `with`: a child of the memory group `memory` on cgroup v2 (a v2 process is
  in one group only), of our blkio group on v1; a null context if unlimited."""
  limit = read_limit(args)
  if not limit:
    return contextlib.nullcontext()
  return throttle.ReadThrottle(
      throttle.block_device(archives),
      limit,
      memory.path if memory and memory.version == 2 else None,
  )


def _prepare_page_cache(
    archive_set: bench_archives.ArchiveSet,
    cold: bool,
    group: cgroup.MemoryCgroup | None,
    tree: Path | None = None,
) -> float:
  """Puts the archives where a run starts: evicted if `cold`, else read into
  the page cache (by a process in `group`, so that a capped run's cache holds
  what fits its cap, not pages charged to us). Returns the fraction of the
  archive bytes in the page cache afterwards."""
  paths = [archive_set.train, archive_set.val]
  # Flush earlier runs' dirty pages so their writeback does not slow this.
  os.sync()
  if cold or group:
    page_cache.evict(paths + (trees.tree_files(tree) if tree else []))
  if not cold:
    # An earlier run's output (upstream's: twice the archives) may have
    # pushed them out.
    page_cache.warm(paths, group.wrap if group else None)
  resident = sum(page_cache.resident_bytes(path) for path in paths)
  return resident / archive_set.num_bytes


def _in_groups(
    argv: list[str],
    memory: cgroup.MemoryCgroup | None,
    limited: throttle.ReadThrottle | None,
) -> list[str]:
  """`argv` started in the run's groups (on cgroup v2, the throttle's only:
  it is in the memory group)."""
  if memory and not (limited and limited.version == 2):
    argv = memory.wrap(argv)
  return limited.wrap(argv) if limited else argv


def _timed(
    name: str,
    fields: dict[str, str],
    archive_set: bench_archives.ArchiveSet,
    args: argparse.Namespace,
    log_path: Path,
) -> tuple[measure.RunResult, dict[str, object]]:
  """Runs variant `name` under the run's conditions; returns its result and
  the conditions' own measures."""
  capped = (
      cgroup.MemoryCgroup(int(args.cache_limit * 1e9))
      if args.cache_limit
      else contextlib.nullcontext()
  )
  with capped as memory:
    tree = Path(fields['tree']) if 'tree' in fields else None
    cached = _prepare_page_cache(archive_set, args.cold, memory, tree)
    with read_throttle(args, archive_set.train, memory) as group:
      if group:
        page_cache.warm_libraries()
      result = measure.run_and_measure(
          _in_groups(command(name, fields), memory, group),
          environment(name, fields, args.read_order),
          Path(fields['data_dir']),
          log_path,
          args.timeout,
      )
    peak = memory.peak_bytes() if memory else None
    return result, {
        'oom_kills': memory.oom_kills() if memory else 0,
        'archives_cached_at_start': cached,
        **({'cgroup_peak_gb': peak / 1e9} if peak else {}),
    }


def run_once(
    name: str,
    repeat: int,
    archive_set: bench_archives.ArchiveSet,
    args: argparse.Namespace,
) -> dict[str, object]:
  """Runs one variant once in a fresh data dir; returns its measurements."""
  log_dir = args.workdir / 'logs'
  log_dir.mkdir(exist_ok=True)
  log_path = log_dir / f'{archive_set.directory.name}-{name}-{repeat}.log'
  # Same disk as the archives, so temp and output space is measured there.
  scratch = Path(tempfile.mkdtemp(prefix=f'run-{name}-', dir=args.workdir))
  data_dir = scratch / 'data'
  fields = {
      'archives': str(archive_set.directory),
      'train': str(archive_set.train),
      'val': str(archive_set.val),
      'checksums': str(archive_set.checksums),
      'data_dir': str(data_dir),
      'cache_dir': str(scratch / 'cache'),
  }
  if any('{tree}' in arg for arg in command_template(name)):
    fields['tree'] = str(trees.ensure_tree(archive_set))
  conditions = {'oom_kills': 0, 'archives_cached_at_start': 0.0}
  try:
    data_dir.mkdir()
    setup = setup_command(name, fields)
    if setup:
      setup_log = log_path.with_suffix('.setup.log')
      # Under the run's read limit: a rebuild's first build ran on the same
      # disk, and what it remembers (an index read in order or by offset)
      # depends on the disk it measured.
      with read_throttle(args, archive_set.train, None) as group:
        result = measure.run_and_measure(
            _in_groups(setup, None, group), environment(name, fields, args.read_order),
            data_dir, setup_log, args.timeout,
        )
      shutil.rmtree(data_dir)
      data_dir.mkdir()
    if setup and result.returncode:
      conditions['failed_in_setup'] = True
      log_path = setup_log
    else:
      result, conditions = _timed(name, fields, archive_set, args, log_path)
    builder_s = _builder_seconds(data_dir)
  finally:
    shutil.rmtree(scratch, ignore_errors=True)
  num_bytes = archive_set.num_bytes
  row = {
      'variant': name,
      'repeat': repeat,
      'returncode': result.returncode,
      'timed_out': result.timed_out,
      **conditions,
      'wall_s': result.wall_s,
      **({'builder_s': builder_s} if builder_s is not None else {}),
      'cpu_s': result.cpu_s,
      'probe': probe_choices(log_path),
      'images_per_s': archive_set.num_images / result.wall_s,
      'mb_per_s': num_bytes / 1e6 / result.wall_s,
      'peak_rss_gb': result.peak_rss_bytes / 1e9,
      'peak_temp_gb': result.temp_bytes / 1e9,
      'output_gb': result.final_dir_bytes / 1e9,
      'read_per_archive_byte': result.read_chars / num_bytes,
      'written_per_archive_byte': result.write_chars / num_bytes,
      'log': str(log_path),
  }
  _print_run(row, result.log_tail, args.timeout)
  return row


def _print_run(
    row: dict[str, object], log_tail: str, timeout_s: float
) -> None:
  """One line for a run that worked; the end of its log for one that failed."""
  name, repeat = row['variant'], row['repeat']
  if row['returncode']:
    why = (
        f'TIMED OUT after {timeout_s:.0f} s and was killed'
        if row['timed_out']
        else f'exited with {row["returncode"]} after {row["wall_s"]:.1f} s'
    )
    if row.get('failed_in_setup'):
      why += ' in its untimed setup'
    if row['oom_kills']:
      why += f' ({row["oom_kills"]} process(es) killed for lack of memory)'
    print(
        f'\n{"!" * 72}\nFAILED: {name} (repeat {repeat}) {why}.'
        f' Log: {row["log"]}\n'
        f'--- last lines ---\n{log_tail}\n{"!" * 72}\n',
        file=sys.stderr,
    )
    return
  print(
      f'  {name} #{repeat}: {row["wall_s"]:.1f} s'
      + (f' (builder {row["builder_s"]:.1f} s)' if 'builder_s' in row else '')
      + f', {row["images_per_s"]:.0f} images/s, {row["mb_per_s"]:.0f} MB/s,'
      f' peak RSS {row["peak_rss_gb"]:.2f} GB'
      + (f', cgroup peak {row["cgroup_peak_gb"]:.2f} GB'
         if 'cgroup_peak_gb' in row else '')
      + f'; {row["archives_cached_at_start"]:.0%} of archives cached at start'
  )


# The line `disk_probe` logs for each choice it makes (IMAGENET2012_LOCAL_READ_ORDER
# auto): `<archive>.tar: <rates>: indexing it in order.`
_PROBE_CHOICE = re.compile(
    r'disk_probe\.py\]: \S*?(train|val)\.tar: ([^:]*): (indexing it|reading'
    r' its images) (by offset|in order)'
)


def probe_choices(log_path: Path) -> list[str]:
  """How the build's disk probe chose to read each archive, from its log:
  e.g. 'train: indexing it in order (1147 header reads/s, ...)'. A probe
  runs at the build's start, so another process's reads then (a test suite
  on the same disk) can turn its choice; [] where no probe ran."""
  text = log_path.read_text(errors='replace') if log_path.exists() else ''
  return [
      f'{archive}: {what} {how} ({rates})'
      for archive, rates, what, how in _PROBE_CHOICE.findall(text)
  ]


def _builder_seconds(data_dir: Path) -> float | None:
  """Our builder's own time (its build_stats.json), without the tfds CLI's
  start; None for other variants. The main builder's is under
  `imagenet2012_local/<version>/`, a variant's under
  `imagenet2012_local_<variant>/<config>/<version>/`."""
  stats = list(data_dir.glob(f'imagenet2012_local*/**/{BUILD_STATS_FILE}'))
  return json.loads(stats[0].read_text())['seconds'] if stats else None
