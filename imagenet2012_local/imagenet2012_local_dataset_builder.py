"""imagenet2012_local: ImageNet 2012 from the manually downloaded archives."""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from collections.abc import Iterator, Mapping

from absl import logging
from etils import epath
import tensorflow_datasets as tfds

from imagenet2012_local import archives
from imagenet2012_local import image_fixes
from imagenet2012_local import labels
from imagenet2012_local import sharded_generation
from imagenet2012_local import verification

# Split -> archive file name in the manual dir.
ARCHIVES = {
    tfds.Split.TRAIN: 'ILSVRC2012_img_train.tar',
    tfds.Split.VALIDATION: 'ILSVRC2012_img_val.tar',
    tfds.Split.TEST: 'ILSVRC2012_img_test.tar',
}
# Split -> how its images are named; other members are skipped or refused.
_IMAGE_NAMES = {
    tfds.Split.TRAIN: archives.TRAIN_IMAGES,
    tfds.Split.VALIDATION: archives.VALIDATION_IMAGES,
    tfds.Split.TEST: archives.TEST_IMAGES,
}
_TEST_LABEL = -1  # The test split has no public labels.
BUILD_STATS_FILE = 'build_stats.json'


class MissingArchivesError(FileNotFoundError):
  """The manual dir holds none of the split archives."""


@dataclasses.dataclass(frozen=True)
class SplitSource:
  """One split's archive, its checksum gate, and how its images get labels."""

  split: str
  check: verification.ArchiveCheck
  validation_labels: labels.ValidationLabels | None
  class_label: tfds.features.ClassLabel

  @property
  def nested(self) -> bool:
    return self.split == tfds.Split.TRAIN

  @property
  def image_names(self) -> archives.Naming:
    return _IMAGE_NAMES[self.split]

  def label(self, file_name: str, class_dir: str | None) -> int:
    """The class index of an image; -1 in the test split."""
    if self.split == tfds.Split.TRAIN:
      return self.class_label.str2int(class_dir)
    if self.split == tfds.Split.VALIDATION:
      return self.class_label.str2int(self.validation_labels[file_name])
    return _TEST_LABEL


class Builder(tfds.core.GeneratorBasedBuilder):
  """ImageNet 2012 (ILSVRC2012), a drop-in for TFDS `imagenet2012` 5.1.0."""

  VERSION = tfds.core.Version('5.1.0')
  RELEASE_NOTES = {
      '5.1.0': (
          'The examples of upstream imagenet2012 5.1.0, read straight from'
          ' the archives, with archive checksums verified.'
      ),
  }
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
  Register at {archives.DOWNLOAD_PAGE} and download into the manual dir (default
  ~/tensorflow_datasets/downloads/manual/, or pass --manual_dir):
    {ARCHIVES[tfds.Split.TRAIN]}  (138 GiB, train)
    {ARCHIVES[tfds.Split.VALIDATION]}  (6.3 GiB, validation)
  and optionally {ARCHIVES[tfds.Split.TEST]} (test, no labels) and
  {labels.DEVKIT_NAME} (cross-checks the validation labels).
  Any subset of the split archives builds those splits. Do not extract them.
  """

  def __init__(
      self,
      *,
      verify_checksums: bool | None = None,
      skip_bad_images: bool | None = None,
      **kwargs,
  ):
    """Like any TFDS builder; `verify_checksums=False` turns the checksum gate off.

    Args:
      verify_checksums: check archive sizes and digests (SHA-256 or MD5) against
        `checksums/`. None (default) follows $IMAGENET2012_LOCAL_VERIFY, which
        is on unless set to 0.
      skip_bad_images: leave out images that no decoder can read, listing them
        in the metadata (`skipped_images`), instead of failing. None (default)
        follows $IMAGENET2012_LOCAL_SKIP_BAD_IMAGES, which is off unless set
        to 1.
      **kwargs: passed to `tfds.core.GeneratorBasedBuilder`.
    """
    self._verify_checksums = verification.verification_enabled(
        verify_checksums
    )
    self._skip_bad_images = verification.flag(
        skip_bad_images, image_fixes.SKIP_BAD_IMAGES_ENV_VAR, default=False
    )
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            'image': tfds.features.Image(encoding_format='jpeg'),
            'label': tfds.features.ClassLabel(
                names_file=labels.class_names_file()
            ),
            'file_name': tfds.features.Text(),  # e.g. 'n15075141_54.JPEG'
        }),
        supervised_keys=('image', 'label'),
        homepage='https://image-net.org/',
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    return {
        split: self._generate_examples(source)
        for split, source in self._split_sources(dl_manager).items()
    }

  def _generate_examples(
      self, source: SplitSource
  ) -> Iterator[tuple[str, Mapping[str, object]]]:
    """TFDS's standard path: one streaming pass, the digest computed inline."""
    check = source.check
    fixer = image_fixes.ImageFixer(str(check.path), self._skip_bad_images)
    skipped_members = {}
    images = archives.iter_images(
        check.path,
        nested=source.nested,
        image_names=source.image_names,
        on_bytes=check.update if check.needs_hashing else None,
        skipped=skipped_members,
    )
    for image in images:
      data = fixer(image.file_name, image.data)
      if data is None:
        continue
      yield image.file_name, {
          'image': data,
          'label': source.label(image.file_name, image.class_dir),
          'file_name': image.file_name,
      }
    check.finish()  # Raises before anything is published if the digest is wrong.
    self._record_split(source, fixer.fixed, fixer.skipped, skipped_members)

  def _download_and_prepare(self, dl_manager, download_config) -> None:
    start = time.monotonic()
    if download_config.max_examples_per_split is not None:
      path = 'TFDS generator (shuffler)'
      super()._download_and_prepare(dl_manager, download_config)
    elif download_config.beam_runner or download_config.beam_options:
      # Imported here: Beam's import cost only for builds that use it.
      from imagenet2012_local import beam_generation  # pylint: disable=g-import-not-at-top

      path = 'beam'
      # The scratch dir lies in TFDS's temporary data dir, so workers can
      # reach it wherever the output goes; BeamMap deletes it after each run.
      self._generate_shards(
          self._split_sources(dl_manager),
          map_fn=beam_generation.BeamMap(
              download_config.beam_runner,
              download_config.beam_options,
              self.data_path / '_beam_scratch',
          ),
      )
    else:
      path = 'sharded'
      self._generate_shards(self._split_sources(dl_manager))
    stats = {'seconds': round(time.monotonic() - start, 3), 'path': path}
    (self.data_path / BUILD_STATS_FILE).write_text(json.dumps(stats))

  def _generate_shards(
      self,
      sources: Mapping[str, SplitSource],
      map_fn: sharded_generation.MapFn = map,
  ) -> None:
    """The fast path: shards written once each, digests computed alongside.

    Args:
      sources: the splits to build.
      map_fn: runs indexing and shard writing; builtin `map` runs them here,
        one after another.
    """
    skipped_members = {split: {} for split in sources}
    with verification.BackgroundHasher(s.check for s in sources.values()) as hasher:
      tasks = []
      for split, source in sources.items():
        members = archives.index_archive(
            source.check.path,
            nested=source.nested,
            image_names=source.image_names,
            skipped=skipped_members[split],
            map_fn=functools.partial(
                sharded_generation.progress_map,
                desc=f'Indexing {split}',
                unit=' tars',
                map_fn=map_fn if _index_on_workers(source.check.path) else map,
            ),
        )
        tasks += sharded_generation.plan_split(
            split,
            source.check.path,
            members,
            lambda m, source=source: source.label(m.file_name, m.class_dir),
            self._get_filename_template(split),
        )
      results = sharded_generation.write_shards(
          sharded_generation.ShardWriter(
              self._example_writer(), self._skip_bad_images
          ),
          tasks,
          map_fn,
          on_result=lambda _: hasher.raise_if_failed(),
      )
      hasher.wait()  # Raises before anything is published if a digest is wrong.
    self.info.set_splits(
        tfds.core.SplitDict([
            sharded_generation.split_info(
                split, results, self._get_filename_template(split)
            )
            for split in sources
        ])
    )
    for split, source in sources.items():
      fixed, skipped = {}, {}
      for result in results:
        if result.split == split:
          fixed.update(result.fixed_images)
          skipped.update(result.skipped_images)
      self._record_split(source, fixed, skipped, skipped_members[split])

  def _split_sources(
      self, dl_manager: tfds.download.DownloadManager
  ) -> dict[str, SplitSource]:
    """The archives present, size-checked, with their label sources.

    Everything that can be checked before reading the archives is checked
    here: the archives' presence and sizes, the free disk space, the labels.
    """
    try:
      manual_dir = epath.Path(dl_manager.manual_dir)
    except AssertionError as e:
      # TFDS's own check, whose message is a page of instructions.
      folder = getattr(dl_manager, '_manual_dir', 'The manual dir')
      raise MissingArchivesError(
          _missing_archives(f'{folder} does not exist or is empty')
      ) from e
    present = {
        split: manual_dir / name
        for split, name in ARCHIVES.items()
        if (manual_dir / name).exists()
    }
    if not present:
      raise MissingArchivesError(
          _missing_archives(f'No ImageNet 2012 archive in {manual_dir}')
      )
    checks = {
        split: verification.ArchiveCheck(path, self._verify_checksums)
        for split, path in present.items()
    }
    for check in checks.values():
      archives.check_tar_size(check.path, check.size)
    sharded_generation.check_free_space(
        self.data_dir_root, sum(check.size for check in checks.values())
    )
    validation_labels = None
    if tfds.Split.VALIDATION in present:
      validation_labels, devkit = labels.validation_labels(
          manual_dir, self._verify_checksums
      )
      if devkit:
        self.info.metadata['class_words'] = devkit.words_by_wnid
    return {
        split: SplitSource(
            split, check, validation_labels, self.info.features['label']
        )
        for split, check in checks.items()
    }

  def _record_split(
      self,
      source: SplitSource,
      fixed: Mapping[str, str],
      skipped_images: Mapping[str, str],
      skipped_members: Mapping[str, str],
  ) -> None:
    """Saves in the metadata, for the split: {file name: why} of the images
    fixed and of those skipped, {member: why} of the archive members that are
    not images, and the archive's status."""
    for name, reason in fixed.items():
      logging.info('Re-encoded %s to RGB JPEG: %s.', name, reason)
    for name, reason in skipped_images.items():
      logging.warning('Skipped %s, which no decoder reads: %s.', name, reason)
    metadata = self.info.metadata
    for key, records in (
        ('fixed_images', fixed),
        ('skipped_images', skipped_images),
        ('skipped_members', skipped_members),
    ):
      metadata.setdefault(key, {})[source.split] = dict(sorted(records.items()))
    metadata.setdefault('archives', {})[source.check.path.name] = {
        'split': source.split,
        **source.check.summary(),
    }


def _index_on_workers(archive: epath.Path) -> bool:
  """Whether `map_fn` (e.g. Beam workers) should read the inner tars' headers.

  Local headers are read in well under a second per GB, less time than a
  pipeline takes to start; in cloud storage each one is a round trip, so
  workers read them in parallel.
  """
  return not verification.is_local(archive)


def _missing_archives(what: str) -> str:
  """The message of a MissingArchivesError: `what` is wrong, then what to do."""
  return (
      f'{what}: expected {", ".join(ARCHIVES.values())} (any of them).\n'
      f'Download them from {archives.DOWNLOAD_PAGE} (free registration) into'
      ' that folder, or pass --manual_dir=<the folder that holds them>.'
  )
