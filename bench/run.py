"""Times builders on ImageNet-shaped archives: `python -m bench.run --help`.

Writes (or reuses) the archives, then runs each variant `--repeats` times,
alternating, each in a fresh data dir next to the archives, with the archives
in the page cache (warm) or not (`--cold`), optionally in a memory cgroup
(`--cache-limit`) and with reads limited as a slower disk's (`--read-iops`,
`--read-mbs`, `--disk-kind`), and prints and saves a table of medians (one
per disk kind). See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import psutil

from bench import archive_specs
from bench import archives as bench_archives
from bench import cgroup
from bench import one_run
from bench import report
from bench import throttle
from bench.variants import VARIANTS


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
  parser.add_argument(
      '--subset-names',
      action='store_true',
      help="train holds all 1,000 classes: each its images of SimCLR's 10 %%"
      ' list (the 1 %% list among them), then unlisted ones up to'
      ' --images-per-class (at least 129), ~21 KB each, so that the subset'
      ' builder can build; ignores --classes',
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
      '--read-iops',
      type=int,
      metavar='N',
      help="limit each run's reads from the archives' disk to N requests a"
      ' second (a cgroup read throttle)',
  )
  parser.add_argument(
      '--read-mbs',
      type=float,
      metavar='M',
      help="limit each run's reads from the archives' disk to M MB (10^6"
      ' bytes) a second',
  )
  parser.add_argument(
      '--disk-kind',
      metavar='KIND[,KIND...]',
      help='for each KIND, every variant runs with reads limited as on that'
      ' kind of disk (a results file each): '
      + ', '.join(
          f'{kind} ({limit.describe()})'
          for kind, limit in throttle.DISK_KINDS.items()
      ),
  )
  parser.add_argument(
      '--read-order',
      choices=('auto', 'by-offset', 'in-order'),
      help='IMAGENET2012_LOCAL_READ_ORDER for every variant that sets none'
      ' (default: unset, i.e. auto: the build measures the disk at its start,'
      " and another process's reads then can turn its choice)",
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
  if args.full_count and args.subset_names:
    parser.error('--full-count and --subset-names are two kinds of set:'
                 ' give one')
  if args.subset_names and args.images_per_class < 129:
    parser.error('--subset-names needs --images-per-class of at least 129,'
                 ' the most the 10 % list names of a class')
  if not 1 <= args.classes <= 1000:
    parser.error('--classes must be 1 to 1000')
  if not 1 <= args.val <= 50_000:  # Validation labels exist for 1..50,000.
    parser.error('--val must be 1 to 50000')
  if args.cache_limit is not None and args.cache_limit <= 0:
    parser.error('--cache-limit must be positive')
  for option, value in (('--read-iops', args.read_iops),
                        ('--read-mbs', args.read_mbs)):
    if value is not None and value <= 0:
      parser.error(f'{option} must be positive')
  args.disk_kind = args.disk_kind.split(',') if args.disk_kind else []
  unknown = set(args.disk_kind) - set(throttle.DISK_KINDS)
  if unknown:
    parser.error(f'unknown disk kinds: {", ".join(sorted(unknown))}')
  if args.disk_kind and (args.read_iops or args.read_mbs):
    parser.error('--disk-kind sets --read-iops and --read-mbs: give one or'
                 ' the other')
  args.workdir = args.workdir.resolve()
  return args


def _per_disk_kind(args: argparse.Namespace) -> list[argparse.Namespace]:
  """The conditions of each disk kind asked for (or of the read limit
  given), each with `disk_kind` one name: 'none' where reads are not
  limited, None for a limit given as numbers."""
  if not args.disk_kind:
    limited = args.read_iops or args.read_mbs
    disk_kind = None if limited else 'none'
    return [argparse.Namespace(**{**vars(args), 'disk_kind': disk_kind})]
  return [
      argparse.Namespace(**{
          **vars(args),
          'disk_kind': kind,
          'read_iops': throttle.DISK_KINDS[kind].iops,
          'read_mbs': (throttle.DISK_KINDS[kind].bytes_per_s or 0) / 1e6
          or None,
      })
      for kind in args.disk_kind
  ]


def _check_groups(args: argparse.Namespace) -> None:
  """Makes and removes the groups the runs need, so that a missing cgroup
  fails now, not after the archives are written."""
  capped = (
      cgroup.MemoryCgroup(int(args.cache_limit * 1e9))
      if args.cache_limit
      else contextlib.nullcontext()
  )
  with capped as memory:
    for run_args in _per_disk_kind(args):
      with one_run.read_throttle(run_args, args.workdir, memory):
        pass


def _results_stem(args: argparse.Namespace, archives_name: str) -> Path:
  """Where results go: one file per archive set and set of conditions."""
  cold = '-cold' if args.cold else ''
  cap = f'-cap{args.cache_limit:g}gb' if args.cache_limit else ''
  if args.disk_kind:
    disk = '' if args.disk_kind == 'none' else f'-{args.disk_kind}'
  else:
    disk = f'-iops{args.read_iops or 0}-mbs{args.read_mbs or 0:g}'
  order = f'-{args.read_order}' if args.read_order else ''
  return args.workdir / f'results-{archives_name}{cold}{cap}{disk}{order}'


def _run_variants(
    args: argparse.Namespace, archive_set: bench_archives.ArchiveSet
) -> int:
  """Runs the variants under one set of conditions; prints and saves the
  results. Returns how many runs failed."""
  rows = [
      one_run.run_once(name, repeat, archive_set, args)
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
  failed = sum(bool(r['returncode']) for r in rows)
  if failed:
    print(f'{failed} run(s) FAILED; see above.', file=sys.stderr)
  return failed


def main(argv: Sequence[str] | None = None) -> int:
  """Writes the archives, runs the variants under each disk kind, prints and
  saves the results."""
  args = parse_args(argv)
  args.workdir.mkdir(parents=True, exist_ok=True)
  try:
    _check_groups(args)
  except cgroup.CgroupError as e:
    print(e, file=sys.stderr)
    return 2
  if args.full_count:
    spec = archive_specs.full_count(args.seed)
  elif args.subset_names:
    spec = archive_specs.with_subset_names(
        args.images_per_class, args.val, args.seed
    )
  else:
    spec = archive_specs.sampled(
        args.classes, args.images_per_class, args.val, args.seed
    )
  archive_set = bench_archives.ensure_archives(args.workdir, spec)
  print(
      f'Archives: {archive_set.directory}'
      f' ({archive_set.num_bytes / 1e9:.2f} GB,'
      f' {archive_set.num_images:,} images)'
  )
  if args.prepare_only:
    return 0
  failed = sum(
      _run_variants(run_args, archive_set) for run_args in _per_disk_kind(args)
  )
  return 1 if failed else 0


if __name__ == '__main__':
  sys.exit(main())
