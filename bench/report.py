"""Summarizes benchmark runs and renders them as Markdown.

`python -m bench.report results-*.json > bench/RESULTS.md` renders saved
results (each file one section: its conditions, disk kind, table and notes);
the harness saves the same section as results-*.md. `--by-disk` prints
instead one table with a row per file (per disk kind), for the README and
docs/performance.md. Ratios only ever compare variants of the same file, i.e.
measured in the same harness run under the same conditions.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from bench import disk_report

_BASELINES = ('upstream', 'cat', 'floor', 'floor-verified', 'floor-reread')
_COLUMNS = (
    ('wall_s', 'wall s', '{:.1f}'),
    # Not in the runs' rows: `summarize` writes it (this VM's runs of one
    # command vary by 2-3 s, which a median hides).
    ('wall_range_s', 'wall s min-max', '{}'),
    ('builder_s', 'builder s', '{:.1f}'),
    ('cpu_s', 'CPU s', '{:.1f}'),
    ('images_per_s', 'images/s', '{:.0f}'),
    ('mb_per_s', 'MB/s', '{:.0f}'),
    ('peak_rss_gb', 'peak RSS GB', '{:.2f}'),
    ('cgroup_peak_gb', 'cgroup peak GB', '{:.2f}'),
    ('peak_temp_gb', 'peak temp GB', '{:.2f}'),
    ('output_gb', 'output GB', '{:.2f}'),
    ('read_per_archive_byte', 'read/archive B', '{:.2f}'),
    ('written_per_archive_byte', 'written/archive B', '{:.2f}'),
)
_NOTES = (
    'x <variant> = throughput relative to that variant (its wall time / this'
    ' wall time), measured in the same harness run under the same conditions.'
    " floor = `tfds build --help` (the tfds CLI's start, which imports"
    ' TensorFlow) then `cat` of the archives into the data dir: the least any'
    ' `tfds build` of them can take. floor-verified = floor, then the'
    " archives' digests (the one our checksum gate computes, by Python's"
    ' hashlib): the least a first, verified build can take. floor-reread ='
    ' floor, then one more read of the archives without hashing it.',
    'builder s = our builder\'s own time (its build_stats.json), without the'
    " tfds CLI's start. CPU s = user and system seconds of the process tree."
    ' Peak RSS sums the RSS of the process tree (sampled'
    ' every 0.1 s); cgroup peak = the memory cgroup\'s peak usage, page cache'
    ' included (with a warm start, the warm-up read counts too).',
    'read/archive B and written/archive B = rchar and wchar of the process'
    ' tree / archive bytes. rchar counts every read() (page cache or disk,'
    ' libraries and Python modules included), so it is an upper bound on'
    ' archive bytes read; wchar includes temporary files (e.g. shuffle'
    ' buckets) that peak temp misses when they are deleted as the output'
    ' grows.',
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
    if len(ok) > 1:
      walls = [r['wall_s'] for r in ok]
      entry['wall_range_s'] = f'{min(walls):.1f}-{max(walls):.1f}'
    summary[name] = entry
  for name, entry in summary.items():
    for base in _BASELINES:
      base_wall = summary.get(base, {}).get('wall_s')
      if base != name and base_wall and 'wall_s' in entry:
        entry[f'vs_{base}'] = base_wall / entry['wall_s']
  return summary


def markdown_table(summary: Mapping[str, Mapping[str, object]]) -> str:
  """The summary as a Markdown table (also readable as plain text); columns
  that no variant has are left out."""
  columns = [
      (key, title, fmt)
      for key, title, fmt in _COLUMNS
      if any(key in entry for entry in summary.values())
  ]
  columns += [
      (f'vs_{base}', f'x {base}', '{:.2f}')
      for base in _BASELINES
      if any(f'vs_{base}' in entry for entry in summary.values())
  ]
  header = ['variant', 'runs'] + [title for _, title, _ in columns]
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  for name, entry in summary.items():
    runs = str(entry['runs'])
    if entry['failed']:
      runs += f' ({entry["failed"]} FAILED)'
    cells = [name, runs] + [
        fmt.format(entry[key]) if key in entry else '-'
        for key, _, fmt in columns
    ]
    lines.append('| ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def conditions(results: Mapping[str, object]) -> list[str]:
  """How the runs were made: page cache, memory limit, machine."""
  config, runs = results['config'], results['runs']
  if config.get('cold'):
    cache = (
        'Cold: before each run the archives were evicted from the page cache'
        ' (posix_fadvise DONTNEED), so they are read from disk.'
    )
  else:
    cache = (
        'Warm: before each run the archives were read, so they start in the'
        ' page cache (as much of them as it holds).'
    )
  cached = [r['archives_cached_at_start'] for r in runs
            if 'archives_cached_at_start' in r]
  if cached:
    span = f'{min(cached):.0%}'
    if f'{max(cached):.0%}' != span:
      span += f' to {max(cached):.0%}'
    cache += f' Archives in the page cache at the start of runs: {span}.'
  limit = config.get('cache_limit')
  memory = (
      f'Memory capped at {limit:g} GB, page cache included: each run\'s'
      ' process tree ran in a memory cgroup with that limit, as on a machine'
      ' with that much RAM.'
      if limit
      else 'No memory cap (page cache limited only by the machine\'s RAM).'
  )
  reads = (
      f'Reads from the archives\' disk limited as on a {disk_report.disk(config)} disk,'
      ' by a cgroup read throttle (bench/throttle.py); writes not limited.'
      ' The variants\' libraries were read into the page cache before each'
      ' run.'
      if config.get('read_iops') or config.get('read_mbs')
      else 'Reads not limited: this VM\'s own disk.'
  )
  return [
      cache,
      memory,
      reads,
      f'Machine: {config["cpus"]} CPUs, {config["ram_bytes"] / 2**30:.0f} GiB'
      f' RAM. Medians of {config["repeats"]} run(s) per variant, variants'
      ' alternating.',
  ]


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


def _goal_note(summary: Mapping[str, Mapping[str, object]]) -> list[str]:
  """The goal's ratios that this run measured, as one note."""
  ratios = disk_report.goal_ratios(summary)
  if not ratios:
    return []
  return [
      "The goal's ratios (wall time / wall time): "
      + '; '.join(f'{title} = {ratio:.2f}' for title, ratio in ratios.items())
      + '.'
  ]


def _heading(results: Mapping[str, object]) -> str:
  """The archives and the conditions, for a section or a row."""
  archives, config = results['archives'], results['config']
  limit = config.get('cache_limit')
  return (
      f'{Path(archives["directory"]).name} ({archives["bytes"] / 1e9:.2f}'
      f' GB, {archives["images"]:,} images):'
      f' {"cold" if config.get("cold") else "warm"},'
      f' {f"capped at {limit:g} GB" if limit else "no memory cap"},'
      f' {disk_report.disk(config)}'
  )


def render(results: Mapping[str, object]) -> str:
  """One results file as a Markdown section: conditions, table, notes."""
  summary = summarize(results['runs'], results['config']['variants'])
  notes = [*_goal_note(summary), *_floor_note(summary), *_NOTES]
  return '\n'.join([
      f'## {_heading(results)}',
      '',
      *(f'- {line}' for line in conditions(results)),
      '',
      markdown_table(summary),
      '',
      *(f'- {line}' for line in notes),
      '',
  ])


def main(argv: Sequence[str] | None = None) -> int:
  """Prints the Markdown for the results files named on the command line."""
  parser = argparse.ArgumentParser(
      prog='python -m bench.report', description=__doc__.splitlines()[0]
  )
  parser.add_argument('results', nargs='+', type=Path, help='results-*.json')
  parser.add_argument(
      '--by-disk',
      action='store_true',
      help='print one table, a row per file (per disk kind): for the docs',
  )
  args = parser.parse_args(argv)
  results = [json.loads(path.read_text()) for path in args.results]
  if args.by_disk:
    print(disk_report.by_disk([
        (one['config'], summarize(one['runs'], one['config']['variants']))
        for one in results
    ]), end='')
    return 0
  sections = [render(one) for one in results]
  print(
      '# Benchmark results\n\nMade by `python -m bench.report` from the'
      ' harness\'s results files (see bench/README.md).\n'
  )
  print('\n'.join(sections), end='')
  return 0


if __name__ == '__main__':
  sys.exit(main())
