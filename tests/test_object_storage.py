"""A manual dir in object storage: `s3://bucket/prefix`.

The tests start moto's S3 server on localhost with a recording proxy in front
(`tests.s3_server`), upload the dummy tars and the folder layouts of
`tests.input_trees`, point the build at the proxy through the standard
variables botocore honours (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...), and
check that the same shards come out as from the local tars; that the tars are
read with ranged GETs, many in flight; that throttling (503 SlowDown) is
retried; and that a missing bucket, a missing prefix and denied access fail in
two lines naming the URL.

Each test reads its own prefix, so no listing a client kept from an earlier
test can answer for it.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

import boto3
import botocore.exceptions
import pytest

from imagenet2012_local import errors
from tests import input_trees
from tests import s3_server
from tests.helpers import DUMMY_DIR, VAL_TAR, build, failed_build

BUCKET = 'imagenet-raw'
# prefix: writes what is uploaded under it into a folder.
UPLOADS = {
    'tars': input_trees.tars,
    'retried': input_trees.tars,
    'denied': input_trees.tars,
    'classic': input_trees.tars,
    'endpoint-s3': input_trees.tars,
    'val-only': lambda d: input_trees.tars(d, VAL_TAR),
    'extracted': input_trees.extracted_tree,
    'torchvision': input_trees.torchvision_tree,
    'kaggle': input_trees.kaggle_tree,
}
# Splits a build from each folder layout gives.
FOLDER_SPLITS = {
    'extracted': ('train', 'validation', 'test'),
    'torchvision': ('train', 'validation'),
    'kaggle': ('train', 'validation', 'test'),
}


def _url(prefix: str, bucket: str = BUCKET) -> str:
  return f's3://{bucket}/{prefix}'


@pytest.fixture(scope='module')
def s3(tmp_path_factory):
  """moto's S3 and the recording proxy, `BUCKET` holding every `UPLOADS` prefix."""
  for server in s3_server.running():
    server.create_bucket(BUCKET)
    for prefix, write in UPLOADS.items():
      folder = write(tmp_path_factory.mktemp(f'upload_{prefix}'))
      assert input_trees.upload_folder(server.client, BUCKET, prefix, folder)
    yield server


@pytest.fixture
def proxy(s3, monkeypatch) -> s3_server.RecordingProxy:
  """The proxy, with nothing recorded; the build's clients pointed at it."""
  for name, value in s3.client_environment().items():
    if value is None:
      monkeypatch.delenv(name, raising=False)
    else:
      monkeypatch.setenv(name, value)
  # The generic variable only: the S3-specific one is tested on its own.
  monkeypatch.delenv('AWS_ENDPOINT_URL_S3', raising=False)
  s3.proxy.reset()
  yield s3.proxy
  s3.proxy.reset()


def _same_shards(data_dir: Path, dummy_build: Path, splits=('train', 'validation', 'test')):
  expected = input_trees.split_shard_files(input_trees.shard_files(dummy_build), splits)
  got = input_trees.shard_files(data_dir)
  assert sorted(got) == sorted(expected)
  for name, data in expected.items():
    assert got[name] == data, f'{name} differs from the local tar build'


# The server and proxy themselves.


def test_the_proxy_serves_uploads_ranged_gets_and_made_up_errors(proxy):
  client = boto3.client('s3')  # From the environment: through the proxy.
  assert client.meta.endpoint_url == proxy.endpoint_url
  listed = client.list_objects_v2(Bucket=BUCKET, Prefix='extracted/')['Contents']
  assert len(listed) == 26 + 10 + 5
  tar = (DUMMY_DIR / VAL_TAR).read_bytes()
  got = client.get_object(Bucket=BUCKET, Key=f'tars/{VAL_TAR}', Range='bytes=512-1535')
  assert got['Body'].read() == tar[512:1536]
  assert [(r.range, r.status) for r in proxy.ranged_gets()] == [('bytes=512-1535', 206)]

  proxy.reset()
  proxy.fail_object_gets = {1}
  assert client.get_object(Bucket=BUCKET, Key=f'tars/{VAL_TAR}')['Body'].read() == tar
  assert [r.status for r in proxy.object_gets()] == [503, 200]

  proxy.deny_all = True
  with pytest.raises(botocore.exceptions.ClientError, match='AccessDenied'):
    client.list_objects_v2(Bucket=BUCKET, Prefix='tars/')


# Builds from object storage.


def test_tars_in_s3_give_the_same_shards_read_by_ranged_gets_in_parallel(
    proxy, dummy_build, tmp_path
):
  # Each GET of object bytes held 30 ms, so requests sent together overlap.
  proxy.object_get_delay_s = 0.03
  build(_url('tars'), tmp_path / 'data')
  _same_shards(tmp_path / 'data', dummy_build)
  ranged = proxy.ranged_gets()
  assert ranged, 'no GET asked for a byte range'
  assert all(r.path.startswith(f'/{BUCKET}/tars/') for r in proxy.object_gets())
  assert proxy.max_in_flight > 1, 'one request at a time'
  assert not Path('s3:').exists()  # The URL was never taken for a local path.


@pytest.mark.parametrize('layout', list(FOLDER_SPLITS))
def test_folder_layouts_in_s3_give_the_same_shards(layout, proxy, dummy_build, tmp_path):
  build(_url(layout), tmp_path / 'data')
  _same_shards(tmp_path / 'data', dummy_build, FOLDER_SPLITS[layout])
  assert proxy.object_gets()
  for path in input_trees.version_dir(tmp_path / 'data').glob('*.json'):
    assert not re.search(r'"status"\s*:\s*"verified"', path.read_text()), path.name


def test_throttling_is_retried(proxy, dummy_build, tmp_path):
  proxy.fail_object_gets = {1, 3, 5}  # 503 SlowDown.
  build(_url('retried'), tmp_path / 'data')
  _same_shards(tmp_path / 'data', dummy_build)
  assert len(proxy.answered(503)) == 3


def test_build_classic_from_s3(proxy, classic_reference, tmp_path):
  assert input_trees.build_classic(_url('classic'), tmp_path / 'out') == 0
  assert input_trees.classic_files(tmp_path / 'out') == input_trees.classic_files(
      classic_reference
  )
  assert proxy.ranged_gets()


def test_the_s3_specific_endpoint_variable_comes_first(
    proxy, monkeypatch, dummy_build, tmp_path
):
  with socket.socket() as unused:  # A closed port: nothing answers there.
    unused.bind(('127.0.0.1', 0))
    closed = f'http://127.0.0.1:{unused.getsockname()[1]}'
  monkeypatch.setenv('AWS_ENDPOINT_URL', closed)
  monkeypatch.setenv('AWS_ENDPOINT_URL_S3', proxy.endpoint_url)
  build(_url('endpoint-s3'), tmp_path / 'data')
  _same_shards(tmp_path / 'data', dummy_build)
  assert proxy.object_gets()


def test_some_of_the_tars_build_those_splits(proxy, dummy_build, tmp_path):
  build(_url('val-only'), tmp_path / 'data')
  _same_shards(tmp_path / 'data', dummy_build, ('validation',))


# What cannot be read fails in two lines naming the URL, nothing published.


def test_a_missing_bucket(proxy, tmp_path):
  first, _ = failed_build(
      _url('imagenet', bucket='no-such-bucket'), tmp_path / 'data',
      errors.Imagenet2012LocalError,
  )
  assert 's3://no-such-bucket' in first


def test_a_missing_prefix(proxy, tmp_path):
  first, _ = failed_build(_url('nothing-here'), tmp_path / 'data', errors.Imagenet2012LocalError)
  assert _url('nothing-here') in first


def test_access_denied(proxy, tmp_path):
  proxy.deny_all = True  # 403 AccessDenied to every request.
  first, _ = failed_build(_url('denied'), tmp_path / 'data', errors.Imagenet2012LocalError)
  assert _url('denied') in first
  assert proxy.answered(403)
