"""Beam builds (`beam_options` given) equal local builds, file for file.

The builds use the FnApiRunner, the DirectRunner's batch engine, named
explicitly: Beam's DirectRunner first tries the Prism runner, which it
downloads from GitHub and which runs the Python code inside the launching
process, ignoring the `direct_*` options.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import apache_beam as beam
import pytest
import tensorflow_datasets as tfds

from imagenet2012_local.engine import beam_generation
from imagenet2012_local.engine import run as engine
from imagenet2012_local import settings
from imagenet2012_local.paths import BUILD_STATS_FILE
from tests.helpers import DUMMY_DIR, read_split

# Two worker processes: the workers unpickle the work, import this package,
# and read and write the same files the launcher sees.
BEAM_FLAGS = (
    'runner=FnApiRunner',
    'direct_running_mode=multi_processing',
    'direct_num_workers=2',
)
IN_PROCESS = beam.options.pipeline_options.PipelineOptions(
    ['--runner=FnApiRunner']
)
SPLITS = ('train', 'validation', 'test')


def _dataset_dir(data_dir: Path) -> Path:
  return data_dir / 'imagenet2012_local' / '5.1.0'


def _published(data_dir: Path) -> dict[str, bytes | None]:
  """Everything under the data dir (cache aside) by relative path: a file's
  bytes, or None for a folder."""
  return {
      str(path.relative_to(data_dir)): (
          path.read_bytes() if path.is_file() else None
      )
      for path in data_dir.rglob('*')
      if path.relative_to(data_dir).parts[0] != 'cache'
  }


def _assert_same_dataset(beam_dir: Path, local_dir: Path) -> None:
  """Same files and folders, files with the same bytes (shards, metadata.json,
  dataset_info.json), except the build stats, which say how each was built."""
  beam_files, local_files = _published(beam_dir), _published(local_dir)
  stats = str(_dataset_dir(Path()) / BUILD_STATS_FILE)
  assert beam_files.pop(stats) and local_files.pop(stats)
  assert sorted(beam_files) == sorted(local_files)  # No scratch left.
  for name, data in local_files.items():
    assert beam_files[name] == data, name
  assert json.loads((_dataset_dir(beam_dir) / BUILD_STATS_FILE).read_text())[
      'path'
  ] == 'beam'


@pytest.fixture(scope='module')
def beam_build(tmp_path_factory) -> Path:
  """The data dir of a Beam build of the dummy data, gate on (it hashes)."""
  data_dir = tmp_path_factory.mktemp('beam_build')
  with pytest.MonkeyPatch.context() as mp:
    mp.setenv(settings.CACHE_DIR_ENV_VAR, str(data_dir / 'cache'))
    tfds.builder('imagenet2012_local', data_dir=data_dir).download_and_prepare(
        download_config=tfds.download.DownloadConfig(
            manual_dir=DUMMY_DIR,
            beam_options=beam.options.pipeline_options.PipelineOptions(
                [f'--{flag}' for flag in BEAM_FLAGS]
            ),
        )
    )
  return data_dir


def test_beam_build_publishes_the_local_build_byte_for_byte(
    beam_build, dummy_build
):
  _assert_same_dataset(beam_build, dummy_build)
  metadata = json.loads((_dataset_dir(beam_build) / 'metadata.json').read_text())
  assert {a['status'] for a in metadata['archives'].values()} == {'verified'}


@pytest.mark.parametrize('split', SPLITS)
def test_beam_build_reads_back_as_the_local_build(beam_build, dummy_build, split):
  assert read_split(beam_build, split) == read_split(dummy_build, split)


@pytest.mark.parametrize('on_workers', [False, True])
def test_cloud_archives_are_indexed_on_the_workers(
    tmp_path, monkeypatch, dummy_build, on_workers
):
  # Local archives are indexed by the launcher; archives in cloud storage
  # (made to look so here) by a pipeline, before the shard-writing one.
  monkeypatch.setattr(engine, 'index_on_workers', lambda archive: on_workers)
  pipelines = []
  run = beam_generation.BeamMap.__call__

  def recording(self, fn, items):
    pipelines.append(getattr(fn, 'func', fn).__name__)
    return run(self, fn, items)

  monkeypatch.setattr(beam_generation.BeamMap, '__call__', recording)
  tfds.builder('imagenet2012_local', data_dir=tmp_path).download_and_prepare(
      download_config=tfds.download.DownloadConfig(
          manual_dir=DUMMY_DIR, beam_options=IN_PROCESS
      )
  )
  assert pipelines == ['index_inner_tars'] * on_workers + ['write_shard']
  _assert_same_dataset(tmp_path, dummy_build)


def test_tfds_build_cli_with_beam_pipeline_options(tmp_path, dummy_build):
  # One run of the documented command line: the options go through the CLI's
  # parsing into download_config.beam_options.
  subprocess.run(
      [
          sys.executable,
          '-m',
          'tensorflow_datasets.scripts.cli.main',
          'build',
          'imagenet2012_local',
          '--imports=imagenet2012_local',
          f'--manual_dir={DUMMY_DIR}',
          f'--data_dir={tmp_path}',
          f'--beam_pipeline_options={",".join(BEAM_FLAGS)}',
      ],
      check=True,
      capture_output=True,
  )
  _assert_same_dataset(tmp_path, dummy_build)


def test_beam_map_returns_results_in_item_order(tmp_path):
  # More than 10 items, so an order by string keys ('10' < '2') would show.
  scratch = tmp_path / 'scratch'
  beam_map = beam_generation.BeamMap(None, IN_PROCESS, scratch)
  assert beam_map(str.upper, [f'x{i}' for i in range(25)]) == [
      f'X{i}' for i in range(25)
  ]
  assert not scratch.exists()


def test_beam_map_of_nothing_runs_no_pipeline(tmp_path):
  # Making a pipeline would fail on the unknown runner.
  beam_map = beam_generation.BeamMap('NoSuchRunner', None, tmp_path / 'scratch')
  assert beam_map(str.upper, []) == []


def _fail(item: str) -> str:
  raise ValueError(f'cannot handle {item}')


def test_beam_map_failure_raises_and_leaves_no_scratch(tmp_path):
  scratch = tmp_path / 'scratch'
  with pytest.raises(ValueError, match='cannot handle a'):
    beam_generation.BeamMap(None, IN_PROCESS, scratch)(_fail, ['a'])
  assert not scratch.exists()
