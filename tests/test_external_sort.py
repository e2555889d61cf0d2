"""Tests of the external sort by key through bucket files."""

from __future__ import annotations

import random

import pytest

from imagenet2012_local.engine import external_sort
from imagenet2012_local.layouts import tfrecords
from tests.helpers import two_lines


def shuffled_items(n: int, seed: int = 0) -> list[tuple[str, bytes]]:
  """(key, record) pairs in random order; some keys repeat."""
  items = [
      (f'name_{k // 2:04d}', f'record {k}'.encode() * (k % 5 + 1))
      for k in range(n)
  ]
  random.Random(seed).shuffle(items)
  return items


def sort(items, bucket_dir, sizes=None):
  """Sorts `items` read twice, sizes their record lengths unless given."""
  sizes = sizes or [len(record) for _, record in items]
  return external_sort.sorted_by_key(
      [(key, size) for (key, _), size in zip(items, sizes)],
      iter(items),
      bucket_dir,
  )


def expected_order(items):
  # Stable: equal keys keep their reading order.
  return [record for _, record in sorted(items, key=lambda item: item[0])]


@pytest.mark.parametrize('bucket_bytes', [1, 100, 1 << 20])
def test_records_come_out_in_key_order(tmp_path, monkeypatch, bucket_bytes):
  monkeypatch.setattr(external_sort, '_BUCKET_BYTES', bucket_bytes)
  items = shuffled_items(200)
  bucket_dir = tmp_path / 'buckets'
  assert list(sort(items, bucket_dir)) == expected_order(items)
  assert list(tmp_path.iterdir()) == []  # Buckets deleted as read.


def test_buckets_on_disk(tmp_path, monkeypatch):
  monkeypatch.setattr(external_sort, '_BUCKET_BYTES', 1000)
  items = shuffled_items(60)
  bucket_dir = tmp_path / 'buckets'
  # 1000 bytes per bucket for 10 items each: 6 buckets.
  records = sort(items, bucket_dir, sizes=[100] * 60)
  paths = sorted(bucket_dir.iterdir())
  assert [p.name for p in paths] == [f'{b:05d}' for b in range(6)]
  # Bucket b: the b-th tenth of the sorted order, in reading order.
  order = expected_order(items)
  for b, path in enumerate(paths):
    in_bucket = set(order[b * 10 : (b + 1) * 10])
    read_order = [record for _, record in items if record in in_bucket]
    assert list(tfrecords.read(path)) == read_order
  assert list(records) == order
  assert not bucket_dir.exists()


def test_bucket_count_is_capped(tmp_path, monkeypatch):
  monkeypatch.setattr(external_sort, '_BUCKET_BYTES', 1)
  monkeypatch.setattr(external_sort, '_MAX_BUCKETS', 3)
  items = shuffled_items(20)
  records = sort(items, tmp_path / 'buckets')
  assert len(list((tmp_path / 'buckets').iterdir())) == 3
  assert list(records) == expected_order(items)


def test_nothing_to_sort(tmp_path):
  assert list(sort([], tmp_path / 'buckets')) == []
  assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize('change', ['order', 'fewer', 'more'])
def test_second_reading_must_match_the_first(tmp_path, change):
  items = [(f'name_{k}', b'record') for k in range(10)]
  second = {
      'order': items[1:2] + items[:1] + items[2:],
      'fewer': items[:-1],
      'more': items + items[:1],
  }[change]
  with pytest.raises(external_sort.ReadChangedError) as raised:
    external_sort.sorted_by_key(
        [(key, 1) for key, _ in items], iter(second), tmp_path / 'buckets'
    )
  assert 'run again' in two_lines(raised.value)[1]
