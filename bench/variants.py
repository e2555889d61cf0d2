"""The commands the harness times, by name.

To add a variant (e.g. a Beam build with other `--beam_pipeline_options`), add
an entry to `VARIANTS`.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from imagenet2012_local.gate import checksum_tables
from imagenet2012_local import settings

_TFDS = str(Path(sys.executable).parent / 'tfds')
_CLI = str(Path(sys.executable).parent / 'imagenet2012-local')


def _tfds_build(
    data_dir: str, dataset: str = 'imagenet2012_local', manual_dir: str = '{archives}'
) -> tuple[str, ...]:
  """`tfds build` of one of our builders (`dataset`, e.g.
  'imagenet2012_local_subset/1pct') from `manual_dir` into `data_dir`."""
  return (
      _TFDS,
      'build',
      dataset,
      '--imports=imagenet2012_local',
      f'--manual_dir={manual_dir}',
      f'--data_dir={data_dir}',
  )


_OURS = _tfds_build('{data_dir}')
# The classic layout (`train-%05d-of-01024`...) straight from the archives.
_CLASSIC = (
    _CLI,
    'build-classic',
    '--manual_dir={archives}',
    '--output_dir={data_dir}/classic',
)
# WebDataset shards (`imagenet1k-train-%04d.tar`...) straight from the archives.
_WDS = (
    _CLI,
    'build-wds',
    '--manual_dir={archives}',
    '--output_dir={data_dir}/wds',
)
# The two steps it replaces: a TFDS build, then export-tpu from it. The TFDS
# build goes into a subfolder, so that its build_stats.json is not taken for
# the whole run's time.
_BUILD_THEN_EXPORT = (
    'sh',
    '-c',
    ' && '.join(
        shlex.join(argv)
        for argv in (
            _tfds_build('{data_dir}/tfds'),
            (
                _CLI,
                'export-tpu',
                '--data_dir={data_dir}/tfds',
                '--output_dir={data_dir}/classic',
            ),
        )
    ),
)
# What any `tfds build` of the archives does at least: the tfds CLI's start
# (it imports TensorFlow, ~5 s), then one read and one write of the archives.
_FLOOR = '"$0" build --help > /dev/null && cat "$1" "$2" > "$3/out"'
# A verified build's least extra work: the digest our checksum gate computes
# on this CPU (SHA-256 where it has SHA instructions), of one more sequential
# read. Python's hashlib: the same OpenSSL code as the gate's.
_DIGEST = ' && ' + shlex.join((
    sys.executable,
    str(Path(__file__).with_name('digest.py')),
    checksum_tables.digests_fastest_first()[0],
)) + ' "$1" "$2" > /dev/null'


@dataclasses.dataclass(frozen=True)
class Variant:
  """A command to time. Strings may use these placeholders: {archives} (the
  manual dir), {train} and {val} (archive paths), {checksums} (their checksum
  table), {data_dir} (fresh, empty, measured), {cache_dir} (fresh, empty)
  and {tree} (the archives' extracted tree, `bench.trees`; evicted too when
  the run is cold).
  `setup`, if any, runs first with the same placeholders and environment,
  untimed and with neither memory cap nor read limit; then the data dir is
  emptied, the cache dir kept, and the page cache set up for the timed run."""

  argv: tuple[str, ...]
  env: Mapping[str, str] = dataclasses.field(default_factory=dict)
  setup: tuple[str, ...] = ()


# An extracted tree's floor: the tfds CLI's start, then every file of the tree
# read once (in the order `find` lists them) and written once, into one file.
_FOLDER_FLOOR = (
    '"$0" build --help > /dev/null'
    ' && find "$1" -type f -print0 | xargs -0 cat > "$2/out"'
)


def _floor(extra: str = '') -> Variant:
  return Variant(
      ('sh', '-c', _FLOOR + extra, _TFDS, '{train}', '{val}', '{data_dir}')
  )


# The checksum gate on, hashing for real: the archives' own table, and no
# archive remembered as verified.
_VERIFIED = {
    settings.EXTRA_TABLES_ENV_VAR: '{checksums}',
    settings.CACHE_DIR_ENV_VAR: '{cache_dir}',
    settings.VERIFY_ENV_VAR: '1',
}
_NOT_VERIFIED = {
    settings.CACHE_DIR_ENV_VAR: '{cache_dir}',
    settings.VERIFY_ENV_VAR: '0',
}

VARIANTS = {
    # The physical limit: read every archive byte once, write it once.
    'cat': Variant(
        ('sh', '-c', 'cat "$0" "$1" > "$2/out"', '{train}', '{val}',
         '{data_dir}')
    ),
    'floor': _floor(),
    # What a first, verified build does at least: the floor, then the
    # archives' digests.
    'floor-verified': _floor(_DIGEST),
    # The floor, then one more read of the archives without hashing it: the
    # floor-verified of earlier runs, below what a verified build can reach
    # where a re-read outpaces the digest (here ~2 GB/s against ~1.7).
    'floor-reread': _floor(' && cat "$1" "$2" > /dev/null'),
    'upstream': Variant((
        _TFDS,
        'build',
        'imagenet2012',
        '--manual_dir={archives}',
        '--data_dir={data_dir}',
    )),
    'ours': Variant(_OURS, _VERIFIED),
    'ours-noverify': Variant(_OURS, _NOT_VERIFIED),
    # A rebuild of the same archives: a first build's cache dir (its archive
    # indexes and verified archives) kept, its output removed.
    'ours-rebuild': Variant(_OURS, _VERIFIED, setup=_OURS),
    'classic': Variant(_CLASSIC, _VERIFIED),
    'classic-noverify': Variant(_CLASSIC, _NOT_VERIFIED),
    'build-export': Variant(_BUILD_THEN_EXPORT, _VERIFIED),
    # The archives read in order whatever the disk (`disk_probe` decides
    # otherwise): what reading in order costs where the disk seeks fast,
    # and its memory at ImageNet's full count.
    'ours-in-order': Variant(_OURS, {**_VERIFIED, settings.READ_ORDER_ENV_VAR: 'in-order'}),
    'ours-noverify-in-order': Variant(
        _OURS, {**_NOT_VERIFIED, settings.READ_ORDER_ENV_VAR: 'in-order'}
    ),
    # The same images as an extracted tree (`bench.trees`): its floor, and
    # our build from it (no digest to check: the gate has nothing to do).
    'folder-floor': Variant(('sh', '-c', _FOLDER_FLOOR, _TFDS, '{tree}', '{data_dir}')),
    'ours-folder': Variant(
        _tfds_build('{data_dir}', manual_dir='{tree}'), _NOT_VERIFIED
    ),
    'wds': Variant(_WDS, _VERIFIED),
    'wds-noverify': Variant(_WDS, _NOT_VERIFIED),
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


def _with_workers(variant: Variant, workers: int) -> Variant:
  """`variant` with `workers` worker processes: the engine's scaling, where
  cores are many (without TensorFlow: `build-classic`)."""
  return dataclasses.replace(
      variant, env={**variant.env, settings.WORKERS_ENV_VAR: str(workers)}
  )


VARIANTS.update({
    f'classic-noverify-workers-{n}': _with_workers(VARIANTS['classic-noverify'], n)
    for n in (1, 2, 4, 8, 16)
})


# The subsets (docs/variants.md): train only the images SimCLR's list names,
# validation whole; the gate on and off, as `ours` and `ours-noverify`. Their
# train archive must hold every listed image, of all 1,000 classes: run them
# on a `--subset-names` set.
VARIANTS.update({
    f'subset-{config}{suffix}': Variant(
        _tfds_build('{data_dir}', f'imagenet2012_local_subset/{config}'), env
    )
    for config in ('1pct', '10pct')
    for suffix, env in (('', _VERIFIED), ('-noverify', _NOT_VERIFIED))
})
# A subset built after the full build of the same archives (its untimed
# setup, same cache dir): the archives' digests and indexes are remembered,
# so what is left is in proportion to what the subset writes.
VARIANTS.update({
    f'subset-{config}-after-full': Variant(
        _tfds_build('{data_dir}', f'imagenet2012_local_subset/{config}'),
        _VERIFIED,
        setup=_OURS,
    )
    for config in ('1pct', '10pct')
})

# The downsampled variant decodes every image, so its figure is images per
# second per core: the build on one worker, pinned with its whole tree to one
# CPU (the harness's last), against Pillow's own full decode and box resize
# of the same images from the same tars on the same CPU, without and with
# Pillow's PNG encode. The gate is off: Pillow's baseline does not hash.
_ONE_CPU = ('taskset', '-c', str(max(os.sched_getaffinity(0))))
_PILLOW = (
    *_ONE_CPU,
    sys.executable,
    str(Path(__file__).with_name('pillow_resize.py')),
)


def _downsampled(size: int) -> dict[str, Variant]:
  """The downsampled variant at size x size, and Pillow's two baselines."""
  config = f'{size}x{size}'
  return {
      f'resized-{config}': Variant(
          (*_ONE_CPU,
           *_tfds_build('{data_dir}', f'imagenet2012_local_resized/{config}')),
          {**_NOT_VERIFIED, settings.WORKERS_ENV_VAR: '1'},
      ),
      f'pillow-resize-{config}': Variant(
          (*_PILLOW, str(size), '{train}', '{val}')
      ),
      f'pillow-resize-png-{config}': Variant(
          (*_PILLOW, '--png', str(size), '{train}', '{val}')
      ),
  }


for _size in (8, 16, 32, 64):  # Upstream imagenet_resized's configs.
  VARIANTS.update(_downsampled(_size))


def command_template(name: str) -> tuple[str, ...]:
  """Variant `name`'s argv with its placeholders."""
  return VARIANTS[name].argv


def command(name: str, fields: Mapping[str, str]) -> list[str]:
  """Variant `name`'s argv with its placeholders filled from `fields`."""
  return _filled(VARIANTS[name].argv, fields)


def setup_command(name: str, fields: Mapping[str, str]) -> list[str]:
  """Variant `name`'s untimed setup, filled from `fields`; [] if none."""
  return _filled(VARIANTS[name].setup, fields)


def _filled(args: Sequence[str], fields: Mapping[str, str]) -> list[str]:
  return [arg.format(**fields) for arg in args]


def environment(
    name: str, fields: Mapping[str, str], read_order: str | None = None
) -> dict[str, str]:
  """The caller's environment without our settings, plus variant `name`'s;
  `read_order` (the harness's `--read-order`), if given, where the variant
  sets none."""
  env = {
      k: v for k, v in os.environ.items() if not k.startswith('IMAGENET2012_')
  }
  if read_order:
    env[settings.READ_ORDER_ENV_VAR] = read_order
  env.update({k: v.format(**fields) for k, v in VARIANTS[name].env.items()})
  return env
