"""Times builders on ImageNet-shaped archives: `python -m bench.run --help`.

Writes (or reuses) the archives, then runs each variant `--repeats` times,
alternating, each in a fresh data dir next to the archives, and prints and
saves a table of medians. See bench/README.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import psutil

from bench import archives as bench_archives
from bench import measure
from imagenet2012_local import verification
from imagenet2012_local.imagenet2012_local_dataset_builder import BUILD_STATS_FILE

_TFDS = str(Path(sys.executable).parent / 'tfds')
_OURS = (
    _TFDS,
    'build',
    'imagenet2012_local',
    '--imports=imagenet2012_local',
    '--manual_dir={archives}',
    '--data_dir={data_dir}',
)
_BASELINES = ('upstream', 'cat', 'floor')
_IO_NOTE = (
    'read/archive B and written/archive B = rchar and wchar of the process'
    ' tree / archive bytes. rchar counts every read() (page cache or disk,'
    ' libraries and Python modules included), so it is an upper bound on'
    ' archive bytes read; wchar includes temporary files (e.g. shuffle'
    ' buckets) that peak temp misses when they are deleted as the output grows.'
)


@dataclasses.dataclass(frozen=True)
class Variant:
  """A command to time. Strings may use these placeholders: {archives} (the
  manual dir), {train} and {val} (archive paths), {checksums} (their checksum
  table), {data_dir} (fresh, empty, measured) and {cache_dir} (fresh, empty)."""

  argv: tuple[str, ...]
  env: Mapping[str, str] = dataclasses.field(default_factory=dict)


VARIANTS = {
    # The physical limit: read every archive byte once, write it once.
    'cat': Variant(
        ('sh', '-c', 'cat "$0" "$1" > "$2/out"', '{train}', '{val}',
         '{data_dir}')
    ),
    # What any `tfds build` of these archives takes at least: the tfds CLI's
    # start (it imports TensorFlow, ~5 s), then one read and one write.
    'floor': Variant((
        'sh',
        '-c',
        '"$0" build --help > /dev/null && cat "$1" "$2" > "$3/out"',
        _TFDS,
        '{train}',
        '{val}',
        '{data_dir}',
    )),
    'upstream': Variant((
        _TFDS,
        'build',
        'imagenet2012',
        '--manual_dir={archives}',
        '--data_dir={data_dir}',
    )),
    'ours': Variant(
        _OURS,
        {
            verification.EXTRA_TABLES_ENV_VAR: '{checksums}',
            verification.CACHE_DIR_ENV_VAR: '{cache_dir}',
            verification.VERIFY_ENV_VAR: '1',
        },
    ),
    'ours-noverify': Variant(
        _OURS,
        {
            verification.CACHE_DIR_ENV_VAR: '{cache_dir}',
            verification.VERIFY_ENV_VAR: '0',
        },
    ),
}


def _on_beam(variant: Variant, workers: int) -> Variant:
  """`variant` run as a Beam pipeline on `workers` local worker processes."""
  # FnApiRunner, the DirectRunner's batch engine, named so that the DirectRunner
  # does not try Prism instead (downloaded, in-process, ignores direct_*).
  options = (
      'runner=FnApiRunner,direct_running_mode=multi_processing,'
      f'direct_num_workers={workers}'
  )
  return dataclasses.replace(
      variant, argv=(*variant.argv, f'--beam_pipeline_options={options}')
  )


VARIANTS.update(
    {f'ours-beam-{n}': _on_beam(VARIANTS['ours-noverify'], n) for n in (1, 2)}
)


def _environment(
    variant: Variant, fields: Mapping[str, str]
) -> dict[str, str]:
  """The caller's environment without our settings, plus the variant's."""
  env = {
      k: v for k, v in os.environ.items() if not k.startswith('IMAGENET2012_')
  }
  env.update({k: v.format(**fields) for k, v in variant.env.items()})
  return env


def _run_once(
    name: str,
    repeat: int,
    archive_set: bench_archives.ArchiveSet,
    workdir: Path,
    timeout_s: float,
) -> dict[str, object]:
  """Runs one variant once in a fresh data dir; returns its measurements."""
  log_dir = workdir / 'logs'
  log_dir.mkdir(exist_ok=True)
  log_path = log_dir / f'{archive_set.directory.name}-{name}-{repeat}.log'
  # Same disk as the archives, so temp and output space is measured there.
  scratch = Path(tempfile.mkdtemp(prefix=f'run-{name}-', dir=workdir))
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
    # Flush earlier runs' dirty pages so their writeback does not slow this,
    # and read the archives back into the page cache: an earlier run's
    # output (upstream's: twice the archives) may have pushed them out.
    os.sync()
    _warm_page_cache(archive_set)
    variant = VARIANTS[name]
    result = measure.run_and_measure(
        [arg.format(**fields) for arg in variant.argv],
        _environment(variant, fields),
        scratch / 'data',
        log_path,
        timeout_s,
    )
    builder_s = _builder_seconds(scratch / 'data')
  finally:
    shutil.rmtree(scratch, ignore_errors=True)
  num_bytes = archive_set.num_bytes
  row = {
      'variant': name,
      'repeat': repeat,
      'returncode': result.returncode,
      'timed_out': result.timed_out,
      'wall_s': result.wall_s,
      **({'builder_s': builder_s} if builder_s is not None else {}),
      'images_per_s': archive_set.num_images / result.wall_s,
      'mb_per_s': num_bytes / 1e6 / result.wall_s,
      'peak_rss_gb': result.peak_rss_bytes / 1e9,
      'peak_temp_gb': result.temp_bytes / 1e9,
      'output_gb': result.final_dir_bytes / 1e9,
      'read_per_archive_byte': result.read_chars / num_bytes,
      'written_per_archive_byte': result.write_chars / num_bytes,
      'log': str(log_path),
  }
  if result.returncode:
    why = (
        f'TIMED OUT after {timeout_s:.0f} s and was killed'
        if result.timed_out
        else f'exited with {result.returncode} after {result.wall_s:.1f} s'
    )
    print(
        f'\n{"!" * 72}\nFAILED: {name} (repeat {repeat}) {why}.'
        f' Log: {log_path}\n'
        f'--- last lines ---\n{result.log_tail}\n{"!" * 72}\n',
        file=sys.stderr,
    )
  else:
    print(
        f'  {name} #{repeat}: {result.wall_s:.1f} s'
        + (f' (builder {builder_s:.1f} s)' if builder_s is not None else '')
        + ','
        f' {row["images_per_s"]:.0f} images/s, {row["mb_per_s"]:.0f} MB/s'
    )
  return row


def _builder_seconds(data_dir: Path) -> float | None:
  """Our builder's own time (its build_stats.json), without the tfds CLI's
  start; None for other variants."""
  stats = list(data_dir.glob(f'imagenet2012_local/*/{BUILD_STATS_FILE}'))
  return json.loads(stats[0].read_text())['seconds'] if stats else None


_COLUMNS = (
    ('wall_s', 'wall s', '{:.1f}'),
    ('builder_s', 'builder s', '{:.1f}'),
    ('images_per_s', 'images/s', '{:.0f}'),
    ('mb_per_s', 'MB/s', '{:.0f}'),
    ('peak_rss_gb', 'peak RSS GB', '{:.2f}'),
    ('peak_temp_gb', 'peak temp GB', '{:.2f}'),
    ('output_gb', 'output GB', '{:.2f}'),
    ('read_per_archive_byte', 'read/archive B', '{:.2f}'),
    ('written_per_archive_byte', 'written/archive B', '{:.2f}'),
)


def summarize(
    rows: Sequence[Mapping[str, object]], names: Sequence[str]
) -> dict[str, dict[str, object]]:
  """Per variant: the median of each measure over its successful runs, and its
  throughput relative to each baseline that ran (baseline wall / its wall)."""
  summary = {}
  for name in names:
    ok = [r for r in rows if r['variant'] == name and r['returncode'] == 0]
    ran = sum(r['variant'] == name for r in rows)
    entry = {'runs': len(ok), 'failed': ran - len(ok)}
    if ok:
      entry.update({
          key: statistics.median(r[key] for r in ok)
          for key, _, _ in _COLUMNS
          if all(key in r for r in ok)
      })
    summary[name] = entry
  for name, entry in summary.items():
    for base in _BASELINES:
      base_wall = summary.get(base, {}).get('wall_s')
      if base != name and base_wall and 'wall_s' in entry:
        entry[f'vs_{base}'] = base_wall / entry['wall_s']
  return summary


def markdown_table(summary: Mapping[str, Mapping[str, object]]) -> str:
  """The summary as a Markdown table (also readable as plain text)."""
  header = ['variant', 'runs'] + [title for _, title, _ in _COLUMNS]
  header += [f'x {base}' for base in _BASELINES]
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  for name, entry in summary.items():
    runs = str(entry['runs'])
    if entry['failed']:
      runs += f' ({entry["failed"]} FAILED)'
    cells = [name, runs]
    cells += [
        fmt.format(entry[key]) if key in entry else '-'
        for key, _, fmt in _COLUMNS
    ]
    cells += [
        f'{entry[f"vs_{base}"]:.2f}' if f'vs_{base}' in entry else '-'
        for base in _BASELINES
    ]
    lines.append('| ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def _floor_note(summary: Mapping[str, Mapping[str, object]]) -> list[str]:
  """How 5x upstream's speed compares with the floor, when both ran."""
  upstream = summary.get('upstream', {}).get('wall_s')
  floor = summary.get('floor', {}).get('wall_s')
  if not (upstream and floor):
    return []
  return [
      f'5x upstream = {upstream / 5:.1f} s; floor = {floor:.1f} s'
      f' ({upstream / floor:.1f}x upstream).'
  ]


def _warm_page_cache(archive_set: bench_archives.ArchiveSet) -> float:
  """Reads the archives into the page cache; returns the seconds it took."""
  start = time.perf_counter()
  subprocess.run(
      ['cat', str(archive_set.train), str(archive_set.val)],
      stdout=subprocess.DEVNULL,
      check=True,
  )
  return time.perf_counter() - start


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
  """The command line; see --help."""
  parser = argparse.ArgumentParser(
      prog='python -m bench.run', description=__doc__.splitlines()[0]
  )
  parser.add_argument('--classes', type=int, default=25)
  parser.add_argument('--images-per-class', type=int, default=350)
  parser.add_argument('--val', type=int, default=1000, help='validation images')
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--workdir', type=Path, default=Path('bench/out'))
  parser.add_argument('--repeats', type=int, default=1)
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
  return args


def main(argv: Sequence[str] | None = None) -> int:
  """Writes the archives, runs the variants, prints and saves the results."""
  args = parse_args(argv)
  workdir = args.workdir.resolve()
  workdir.mkdir(parents=True, exist_ok=True)
  archive_set = bench_archives.ensure_archives(
      workdir, args.classes, args.images_per_class, args.val, args.seed
  )
  print(
      f'Archives: {archive_set.directory}'
      f' ({archive_set.num_bytes / 1e9:.2f} GB,'
      f' {archive_set.num_images:,} images)'
  )
  print(
      f'Read the archives in {_warm_page_cache(archive_set):.1f} s. Each run'
      ' starts with them in the page cache (they must fit in RAM), so runs'
      ' measure CPU and writes, not read speed.'
  )
  rows = []
  for repeat in range(args.repeats):
    for name in args.variants:
      rows.append(
          _run_once(name, repeat, archive_set, workdir, args.timeout)
      )
  summary = summarize(rows, args.variants)
  table = markdown_table(summary)
  notes = [
      f'{archive_set.directory.name}: {archive_set.num_bytes / 1e9:.2f} GB,'
      f' {archive_set.num_images:,} images; {psutil.cpu_count()} CPUs,'
      f' {psutil.virtual_memory().total / 2**30:.0f} GiB RAM; medians of'
      f' {args.repeats} run(s); archives in the page cache at the start of'
      ' each run.',
      'x upstream / x cat / x floor = throughput relative to that variant'
      ' (its wall time / this wall time). floor = `tfds build --help` (the'
      " tfds CLI's start, which imports TensorFlow) then cat: the least any"
      ' `tfds build` of these archives can take.',
      *_floor_note(summary),
      _IO_NOTE,
  ]
  print('\n' + table + '\n\n' + '\n'.join(notes))
  stem = workdir / f'results-{archive_set.directory.name}'
  Path(f'{stem}.md').write_text(
      table + '\n\n' + '\n'.join(f'- {n}' for n in notes) + '\n'
  )
  Path(f'{stem}.json').write_text(
      json.dumps(
          {
              'config': {
                  **vars(args),
                  'workdir': str(workdir),
                  'cpus': psutil.cpu_count(),
                  'ram_bytes': psutil.virtual_memory().total,
              },
              'archives': {
                  'directory': str(archive_set.directory),
                  'bytes': archive_set.num_bytes,
                  'images': archive_set.num_images,
              },
              'runs': rows,
              'summary': summary,
          },
          indent=1,
      )
  )
  print(f'Saved {stem}.md and {stem}.json')
  failed = [r for r in rows if r['returncode']]
  if failed:
    print(f'{len(failed)} run(s) FAILED; see above.', file=sys.stderr)
  return 1 if failed else 0


if __name__ == '__main__':
  sys.exit(main())
