"""The tar index: its header reader for plain tars agrees with tarfile's."""

from __future__ import annotations

import io
import tarfile

import fsspec
import pytest

from imagenet2012_local.sources import archive_facts
from imagenet2012_local.sources import archive_index
from imagenet2012_local.sources import image_reads
from imagenet2012_local.sources import tar_headers
from imagenet2012_local.sources import tar_reader
from imagenet2012_local.sources import tarfile_members
from tests.helpers import DUMMY_DIR, TRAIN_TAR, VAL_TAR, tar_images

_IMAGES = [
    (f'ILSVRC2012_val_{n:08d}.JPEG', bytes([n]) * (100 * n + 3)) for n in (3, 1, 2)
]


def _write_tar(path, tar_format: int, pax_headers: dict[str, str] | None = None):
  with tarfile.open(path, 'w', format=tar_format) as tar:
    for name, data in _IMAGES:
      info = tarfile.TarInfo(name)
      info.size = len(data)
      if pax_headers:
        info.pax_headers = pax_headers
      tar.addfile(info, io.BytesIO(data))


def _contents(path, index: archive_index.ArchiveIndex) -> list[tuple[str, bytes]]:
  images = list(index.images())
  return [
      (name, data)
      for (name, _, _), data in zip(images, image_reads.read_images(str(path), images, 16))
  ]


def _index(path):
  return archive_index.index_archive(path, archive_facts.VALIDATION)


def _without_tarfile(monkeypatch) -> None:
  def refuse(*args, **kwargs):
    raise AssertionError('tarfile was used')

  monkeypatch.setattr(tarfile_members.tarfile, 'open', refuse)


@pytest.mark.parametrize(
    'tar_format', [tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT, tarfile.PAX_FORMAT]
)
def test_plain_tars_are_indexed_without_tarfile(tmp_path, monkeypatch, tar_format):
  path = tmp_path / VAL_TAR
  _write_tar(path, tar_format)
  _without_tarfile(monkeypatch)
  assert _contents(path, _index(path)) == _IMAGES


@pytest.mark.parametrize('name', [TRAIN_TAR, VAL_TAR])
def test_the_dummy_archives_are_indexed_without_tarfile(monkeypatch, name):
  _without_tarfile(monkeypatch)
  archive = archive_facts.TRAIN if name == TRAIN_TAR else archive_facts.VALIDATION
  index = archive_index.index_archive(DUMMY_DIR / name, archive)
  monkeypatch.undo()
  expected = tar_images(DUMMY_DIR / name)
  assert {index.file_name(i): index.class_dir(i) for i in range(len(index))} == {
      name: wnid for name, (wnid, _) in expected.items()
  }
  assert dict(_contents(DUMMY_DIR / name, index)) == {
      name: data for name, (_, data) in expected.items()
  }


def test_extended_headers_are_left_to_tarfile(tmp_path, monkeypatch):
  path = tmp_path / VAL_TAR
  _write_tar(path, tarfile.PAX_FORMAT, pax_headers={'comment': 'scanned'})
  assert _contents(path, _index(path)) == _IMAGES
  _without_tarfile(monkeypatch)
  with pytest.raises(AssertionError, match='tarfile was used'):
    _index(path)


def test_a_header_with_a_wrong_checksum_is_reported(tmp_path):
  path = tmp_path / VAL_TAR
  _write_tar(path, tarfile.GNU_FORMAT)
  data = bytearray(path.read_bytes())
  second_header = 512 + 512  # After the first header and its 303 bytes of data.
  data[second_header + 20] ^= 0x01  # In the name: the checksum no longer fits.
  path.write_bytes(bytes(data))
  with pytest.raises(tar_reader.ArchiveError, match='unreadable tar header at byte 1,024'):
    _index(path)


@pytest.mark.parametrize(
    'field, expected',
    [
        (b'00000360566\x00', 0o360566),
        (b'010141\x00 ', 0o10141),
        (b'   17 \x00\x00', 0o17),
        (b'\x80\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00', None),  # Base-256.
        (b'\x00' * 12, None),
        (b'0000008\x00', None),
    ],
)
def test_octal_fields(field, expected):
  assert tar_headers.octal(field) == expected


@pytest.mark.parametrize('in_flight', [1, 2, 16])
def test_remote_reads_come_back_in_order(in_flight):
  """Archives in a store are read many ranges at a time; the order never changes."""
  path = DUMMY_DIR / TRAIN_TAR
  images = list(archive_index.index_archive(path, archive_facts.TRAIN).images())
  images = images[::-1] + images[:3]  # Any order, repeats too.
  expected = [path.read_bytes()[offset : offset + size] for _, offset, size in images]
  url = f'memory://reads-{in_flight}/{TRAIN_TAR}'
  fsspec.filesystem('memory').pipe(url, path.read_bytes())
  assert list(image_reads.read_images(url, images, in_flight)) == expected
