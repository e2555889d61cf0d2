"""A checksum table that cannot be read, or has a malformed line, fails the
build in two lines naming the file (and line), from `tfds build` and
`imagenet2012-local build-classic`; a digest in upper case is a digest."""

from __future__ import annotations

import pytest

from imagenet2012_local.gate import checksum_tables
from imagenet2012_local.commands import cli
from imagenet2012_local import settings
from tests import fake_archives
from tests.helpers import (
    VAL_TAR,
    build,
    failed_build,
    manual_dir_holding,
    manual_dir_with,
    metadata,
    val_images,
)
from tests.test_os_errors import cli_error

_ROW = 'x.tar\t512\t' + '0' * 32 + '\t-'


@pytest.mark.parametrize(
    'row, problem',
    [
        (_ROW.rsplit('\t', 1)[0], '3 tab-separated fields instead of 4 (name,'
         ' size, md5, sha256)'),
        (f'{_ROW}\textra', '5 tab-separated fields instead of 4 (name, size,'
         ' md5, sha256)'),
        (_ROW.replace('\t', ' '), '1 tab-separated fields instead of 4 (name,'
         ' size, md5, sha256)'),
        (_ROW.replace('512', '5 MB'), "the size '5 MB' is not a whole number"
         ' of bytes'),
        (_ROW.replace('0' * 32, 'z' * 32), f"the MD5 '{'z' * 32}' is not 32"
         ' hexadecimal digits'),
        (_ROW.replace('0' * 32, '0' * 31), f"the MD5 '{'0' * 31}' is not 32"
         ' hexadecimal digits'),
        # A SHA-1 in the SHA-256 column.
        (_ROW.replace('\t-', '\t' + 'a' * 40), f"the SHA-256 '{'a' * 40}' is"
         ' not 64 hexadecimal digits'),
        ('\t' + _ROW.split('\t', 1)[1], 'no archive name'),
    ],
)
def test_a_malformed_checksum_table_names_its_file_and_line(
    tmp_path, monkeypatch, row, problem
):
  table = tmp_path / 'mine.tsv'
  table.write_text(f'# My archives.\n{_ROW}\n{row}\n{_ROW}\n')
  monkeypatch.setenv(settings.EXTRA_TABLES_ENV_VAR, str(table))
  manual = manual_dir_with(tmp_path, VAL_TAR)
  what, fix = failed_build(
      manual, tmp_path / 'data', checksum_tables.ChecksumTableError
  )
  assert what == f'{table}, line 3: {problem}.'
  assert fix.startswith('Fix or remove that line: each holds name<TAB>size')


@pytest.mark.parametrize(
    'make, why',
    [
        (lambda path: None, 'No such file or directory'),
        (lambda path: path.mkdir(), 'Is a directory'),
        (lambda path: path.write_bytes(b'\xff\xfe\x00'), 'not UTF-8 text'),
        (lambda path: path.write_text(f'{_ROW}\n{_ROW[:-2]}\n'), None),
    ],
)
def test_a_bad_checksum_table_fails_build_classic_in_two_lines(
    tmp_path, monkeypatch, capsys, make, why
):
  table = tmp_path / 'mine.tsv'
  make(table)
  monkeypatch.setenv(settings.EXTRA_TABLES_ENV_VAR, str(table))
  manual = manual_dir_with(tmp_path, VAL_TAR)
  argv = ['build-classic', '--manual_dir', str(manual), '--output_dir', str(tmp_path / 'out')]
  assert cli.main(argv) == 1
  what, fix = cli_error(capsys, 'build-classic')
  if why:
    assert what == f'Cannot read the checksum table {table} ({why}).'
    assert fix.startswith(f'Check the paths in ${settings.EXTRA_TABLES_ENV_VAR}')
  else:
    assert what.startswith(f'{table}, line 2: 3 tab-separated fields')
  assert not (tmp_path / 'out').exists()


def test_upper_case_digests_in_a_table_verify_the_archive(tmp_path, monkeypatch):
  manual = manual_dir_holding(
      tmp_path, VAL_TAR, fake_archives.tar_bytes(val_images(4))
  )
  table = tmp_path / 'mine.tsv'
  checksum_tables.write_table(table, [manual / VAL_TAR], 'Made up.')
  lines = table.read_text().splitlines()
  table.write_text('\n'.join([*lines[:-1], lines[-1].upper().replace(
      VAL_TAR.upper(), VAL_TAR)]) + '\n')
  assert lines[-1] not in table.read_text()  # Its digests are upper case.
  monkeypatch.setenv(settings.EXTRA_TABLES_ENV_VAR, str(table))
  build(manual, tmp_path / 'data')
  assert metadata(tmp_path / 'data')['archives'][VAL_TAR]['status'] == 'verified'
