"""Times builders on ImageNet-shaped archives: `python -m bench.run --help`.

Writes (or reuses) the archives, then runs each variant `--repeats` times,
alternating, each in a fresh data dir next to the archives, with the archives
in the page cache (warm) or not (`--cold`), optionally in a memory cgroup
(`--cache-limit`), and prints and saves a table of medians. See
bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import psutil

from bench import archive_specs
from bench import archives as bench_archives
from bench import cgroup
from bench import measure
from bench import page_cache
from bench import report
from bench.variants import VARIANTS, command, environment
from imagenet2012_local.paths import BUILD_STATS_FILE


def _prepare_page_cache(
    archive_set: bench_archives.ArchiveSet,
    cold: bool,
    group: cgroup.MemoryCgroup | None,
) -> float:
  """Puts the archives where a run starts: evicted if `cold`, else read into
  the page cache (by a process in `group`, so that a capped run's cache holds
  what fits its cap, not pages charged to us). Returns the fraction of the
  archive bytes in the page cache afterwards."""
  paths = [archive_set.train, archive_set.val]
  # Flush earlier runs' dirty pages so their writeback does not slow this.
  os.sync()
  if cold or group:
    page_cache.evict(paths)
  if not cold:
    # An earlier run's output (upstream's: twice the archives) may have
    # pushed them out.
    page_cache.warm(paths, group.wrap if group else None)
  resident = sum(page_cache.resident_bytes(path) for path in paths)
  return resident / archive_set.num_bytes


def _run_once(
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
  capped = (
      cgroup.MemoryCgroup(int(args.cache_limit * 1e9))
      if args.cache_limit
      else contextlib.nullcontext()
  )
  try:
    fields = {
        'archives': str(archive_set.directory),
        'train': str(archive_set.train),
        'val': str(archive_set.val),
        'checksums': str(archive_set.checksums),
        'data_dir': str(scratch / 'data'),
        'cache_dir': str(scratch / 'cache'),
    }
    (scratch / 'data').mkdir()
    with capped as group:
      cached = _prepare_page_cache(archive_set, args.cold, group)
      argv = command(name, fields)
      result = measure.run_and_measure(
          group.wrap(argv) if group else argv,
          environment(name, fields),
          scratch / 'data',
          log_path,
          args.timeout,
      )
      group_peak = group.peak_bytes() if group else None
      oom_kills = group.oom_kills() if group else 0
    builder_s = _builder_seconds(scratch / 'data')
  finally:
    shutil.rmtree(scratch, ignore_errors=True)
  num_bytes = archive_set.num_bytes
  row = {
      'variant': name,
      'repeat': repeat,
      'returncode': result.returncode,
      'timed_out': result.timed_out,
      'oom_kills': oom_kills,
      'archives_cached_at_start': cached,
      'wall_s': result.wall_s,
      **({'builder_s': builder_s} if builder_s is not None else {}),
      'images_per_s': archive_set.num_images / result.wall_s,
      'mb_per_s': num_bytes / 1e6 / result.wall_s,
      'peak_rss_gb': result.peak_rss_bytes / 1e9,
      **({'cgroup_peak_gb': group_peak / 1e9} if group_peak else {}),
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


def _builder_seconds(data_dir: Path) -> float | None:
  """Our builder's own time (its build_stats.json), without the tfds CLI's
  start; None for other variants."""
  stats = list(data_dir.glob(f'imagenet2012_local/*/{BUILD_STATS_FILE}'))
  return json.loads(stats[0].read_text())['seconds'] if stats else None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
  """The command line; see --help."""
  parser = argparse.ArgumentParser(
      prog='python -m bench.run', description=__doc__.splitlines()[0]
  )
  parser.add_argument('--classes', type=int, default=25)
  parser.add_argument('--images-per-class', type=int, default=350)
  parser.add_argument('--val', type=int, default=1000, help='validation images')
  parser.add_argument(
      '--full-count',
      action='store_true',
      help='all 1,281,167 train and 50,000 val images, tiny (~2.6 GB);'
      ' ignores --classes, --images-per-class and --val',
  )
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--workdir', type=Path, default=Path('bench/out'))
  parser.add_argument(
      '--prepare-only',
      action='store_true',
      help='write the archives (if missing) and stop',
  )
  parser.add_argument('--repeats', type=int, default=1)
  parser.add_argument(
      '--cold',
      action='store_true',
      help='evict the archives from the page cache before each run'
      ' (default: read them into it)',
  )
  parser.add_argument(
      '--cache-limit',
      type=float,
      metavar='GB',
      help='run each variant in a memory cgroup of GB (10^9 bytes), page'
      ' cache included',
  )
  parser.add_argument(
      '--timeout',
      type=float,
      default=3600,
      help='seconds before a run is killed and reported as failed',
  )
  parser.add_argument(
      '--variants',
      default=','.join(VARIANTS),
      help=f'comma-separated subset of: {", ".join(VARIANTS)}',
  )
  args = parser.parse_args(argv)
  args.variants = args.variants.split(',')
  unknown = set(args.variants) - set(VARIANTS)
  if unknown:
    parser.error(f'unknown variants: {", ".join(sorted(unknown))}')
  if not 1 <= args.classes <= 1000:
    parser.error('--classes must be 1 to 1000')
  if not 1 <= args.val <= 50_000:  # Validation labels exist for 1..50,000.
    parser.error('--val must be 1 to 50000')
  if args.cache_limit is not None and args.cache_limit <= 0:
    parser.error('--cache-limit must be positive')
  args.workdir = args.workdir.resolve()
  return args


def _results_stem(args: argparse.Namespace, archives_name: str) -> Path:
  """Where results go: one file per archive set and set of conditions."""
  cold = '-cold' if args.cold else ''
  cap = f'-cap{args.cache_limit:g}gb' if args.cache_limit else ''
  return args.workdir / f'results-{archives_name}{cold}{cap}'


def main(argv: Sequence[str] | None = None) -> int:
  """Writes the archives, runs the variants, prints and saves the results."""
  args = parse_args(argv)
  args.workdir.mkdir(parents=True, exist_ok=True)
  if args.cache_limit:
    try:  # Fails now, not after the archives are written.
      with cgroup.MemoryCgroup(int(args.cache_limit * 1e9)):
        pass
    except cgroup.CgroupError as e:
      print(e, file=sys.stderr)
      return 2
  spec = (
      archive_specs.full_count(args.seed)
      if args.full_count
      else archive_specs.sampled(
          args.classes, args.images_per_class, args.val, args.seed
      )
  )
  archive_set = bench_archives.ensure_archives(args.workdir, spec)
  print(
      f'Archives: {archive_set.directory}'
      f' ({archive_set.num_bytes / 1e9:.2f} GB,'
      f' {archive_set.num_images:,} images)'
  )
  if args.prepare_only:
    return 0
  rows = [
      _run_once(name, repeat, archive_set, args)
      for repeat in range(args.repeats)
      for name in args.variants
  ]
  results = {
      'config': {
          **vars(args),
          'workdir': str(args.workdir),
          'cpus': psutil.cpu_count(),
          'ram_bytes': psutil.virtual_memory().total,
      },
      'archives': {
          'directory': str(archive_set.directory),
          'bytes': archive_set.num_bytes,
          'images': archive_set.num_images,
      },
      'runs': rows,
      'summary': report.summarize(rows, args.variants),
  }
  section = report.render(results)
  print('\n' + section)
  stem = _results_stem(args, archive_set.directory.name)
  Path(f'{stem}.md').write_text(section)
  Path(f'{stem}.json').write_text(json.dumps(results, indent=1))
  print(f'Saved {stem}.md and {stem}.json')
  failed = [r for r in rows if r['returncode']]
  if failed:
    print(f'{len(failed)} run(s) FAILED; see above.', file=sys.stderr)
  return 1 if failed else 0


if __name__ == '__main__':
  sys.exit(main())
