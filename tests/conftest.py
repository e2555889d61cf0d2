"""Shared fixtures: an isolated checksum gate, default settings, one build of the dummy data."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagenet2012_local import settings
from tests.helpers import DUMMY_DIR, build


@pytest.fixture(autouse=True)
def _isolated_verification(tmp_path_factory, monkeypatch):
  """Each test starts with no remembered archives and the gate at its default."""
  monkeypatch.setenv(
      settings.CACHE_DIR_ENV_VAR, str(tmp_path_factory.mktemp('cache'))
  )
  monkeypatch.delenv(settings.VERIFY_ENV_VAR, raising=False)
  monkeypatch.delenv(settings.EXTRA_TABLES_ENV_VAR, raising=False)
  monkeypatch.delenv(settings.SKIP_BAD_IMAGES_ENV_VAR, raising=False)


@pytest.fixture(scope='session')
def dummy_build(tmp_path_factory) -> Path:
  """The data dir of one build of the bundled dummy data, gate on."""
  data_dir = tmp_path_factory.mktemp('dummy_build')
  with pytest.MonkeyPatch.context() as mp:
    mp.setenv(settings.CACHE_DIR_ENV_VAR, str(data_dir / 'cache'))
    build(DUMMY_DIR, data_dir)
  return data_dir


@pytest.fixture(scope='session')
def classic_reference(tmp_path_factory) -> Path:
  """build-classic of the bundled dummy archives (`input_trees.build_classic`:
  small shard counts, DALI indexes), gate on: what every other input must give."""
  from tests import input_trees  # pylint: disable=g-import-not-at-top

  root = tmp_path_factory.mktemp('classic_reference')
  with input_trees.isolated_settings(root / 'cache'):
    assert input_trees.build_classic(DUMMY_DIR, root / 'out') == 0
  return root / 'out'
