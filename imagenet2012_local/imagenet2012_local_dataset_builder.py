"""imagenet2012_local: ImageNet 2012 from the manually downloaded archives."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from absl import logging
from etils import epath
import tensorflow_datasets as tfds

from imagenet2012_local import archives
from imagenet2012_local import image_fixes
from imagenet2012_local import labels
from imagenet2012_local import verification

_DOWNLOAD_PAGE = 'https://image-net.org/download-images'

# Split -> archive file name in the manual dir.
ARCHIVES = {
    tfds.Split.TRAIN: 'ILSVRC2012_img_train.tar',
    tfds.Split.VALIDATION: 'ILSVRC2012_img_val.tar',
    tfds.Split.TEST: 'ILSVRC2012_img_test.tar',
}
_TEST_LABEL = -1  # The test split has no public labels.


class MissingArchivesError(FileNotFoundError):
  """The manual dir holds none of the split archives."""


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
  Register at {_DOWNLOAD_PAGE} and download into the manual dir (default
  ~/tensorflow_datasets/downloads/manual/, or pass --manual_dir):
    {ARCHIVES[tfds.Split.TRAIN]}  (138 GiB, train)
    {ARCHIVES[tfds.Split.VALIDATION]}  (6.3 GiB, validation)
  and optionally {ARCHIVES[tfds.Split.TEST]} (test, no labels) and
  {labels.DEVKIT_NAME} (cross-checks the validation labels).
  Any subset of the split archives builds those splits. Do not extract them.
  """

  def __init__(self, *, verify_checksums: bool | None = None, **kwargs):
    """Like any TFDS builder; `verify_checksums=False` turns the MD5 gate off.

    Args:
      verify_checksums: check archive sizes and MD5 digests against
        `checksums/`. None (default) follows $IMAGENET2012_LOCAL_VERIFY, which
        is on unless set to 0.
      **kwargs: passed to `tfds.core.GeneratorBasedBuilder`.
    """
    self._verify_checksums = verification.verification_enabled(
        verify_checksums
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
    manual_dir = epath.Path(dl_manager.manual_dir)
    present = {
        split: manual_dir / name
        for split, name in ARCHIVES.items()
        if (manual_dir / name).exists()
    }
    if not present:
      raise MissingArchivesError(
          f'No ImageNet 2012 archive in {manual_dir}: expected'
          f' {", ".join(ARCHIVES.values())} (any of them).\n'
          f'Download them from {_DOWNLOAD_PAGE} (free registration) into that'
          ' folder, or pass --manual_dir=<the folder that holds them>.'
      )
    # Size checks happen here, before any example is generated.
    checks = {
        split: verification.ArchiveCheck(path, self._verify_checksums)
        for split, path in present.items()
    }
    validation_labels = None
    if tfds.Split.VALIDATION in present:
      validation_labels, devkit = labels.validation_labels(
          manual_dir, self._verify_checksums
      )
      if devkit:
        self.info.metadata['class_words'] = devkit.words_by_wnid
    return {
        split: self._generate_examples(
            split=split, check=check, validation_labels=validation_labels
        )
        for split, check in checks.items()
    }

  def _generate_examples(
      self,
      split: str,
      check: verification.ArchiveCheck,
      validation_labels: labels.ValidationLabels | None,
  ) -> Iterator[tuple[str, Mapping[str, object]]]:
    fixed = {}
    images = archives.iter_images(
        check.path,
        nested=split == tfds.Split.TRAIN,
        on_bytes=check.update if check.needs_hashing else None,
    )
    for image in images:
      if split == tfds.Split.TRAIN:
        label = image.class_dir
      elif split == tfds.Split.VALIDATION:
        label = validation_labels[image.file_name]
      else:
        label = _TEST_LABEL
      data, reason = image_fixes.fix_image(image.data)
      if reason:
        logging.info('Re-encoded %s to RGB JPEG: %s.', image.file_name, reason)
        fixed[image.file_name] = reason
      yield image.file_name, {
          'image': data,
          'label': label,
          'file_name': image.file_name,
      }
    check.finish()  # Raises before anything is published if the MD5 is wrong.
    metadata = self.info.metadata
    metadata.setdefault('fixed_images', {})[split] = dict(sorted(fixed.items()))
    metadata.setdefault('archives', {})[check.path.name] = {
        'split': split,
        **check.summary(),
    }
