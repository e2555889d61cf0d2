"""imagenet2012_local: ImageNet 2012 from the manually downloaded archives."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator, Mapping

from absl import logging
from etils import epath
import tensorflow_datasets as tfds

from imagenet2012_local.sources import archive_facts
from imagenet2012_local.sources import archive_index
from imagenet2012_local.gate import build_lock
from imagenet2012_local.engine import orchestration
from imagenet2012_local.engine import image_fixes
from imagenet2012_local.sources import labels
from imagenet2012_local import paths
from imagenet2012_local.engine import plan
from imagenet2012_local.gate import prepare_checks
from imagenet2012_local.engine import resume
from imagenet2012_local import settings
from imagenet2012_local.engine import shard_writer
from imagenet2012_local.sources import split_sources
from imagenet2012_local import tfds_internals
from imagenet2012_local.layouts import tfds_layout
from imagenet2012_local.gate import verification
from imagenet2012_local.sources import source as source_lib
from imagenet2012_local.sources import storage


# Re-exported: the error users of the builder catch when archives are missing.
MissingArchivesError = split_sources.MissingArchivesError


class Builder(tfds.core.GeneratorBasedBuilder):
  """ImageNet 2012 (ILSVRC2012), a drop-in for TFDS `imagenet2012` 5.1.0."""

  VERSION = tfds.core.Version('5.1.0')
  RELEASE_NOTES = {
      '5.1.0': (
          'The examples of upstream imagenet2012 5.1.0, read straight from'
          ' the archives or an extracted copy of them; how the input was'
          ' checked is in the metadata (archives, folders).'
      ),
  }
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
  Register at {archive_facts.DOWNLOAD_PAGE} and download into the manual dir
  (default ~/tensorflow_datasets/downloads/manual/, or pass --manual_dir):
    {archive_facts.TRAIN.file_name}  ({archive_facts.TRAIN.about})
    {archive_facts.VALIDATION.file_name}  ({archive_facts.VALIDATION.about})
  and optionally {archive_facts.TEST.file_name} ({archive_facts.TEST.about})
  and {archive_facts.DEVKIT} (cross-checks the validation labels).
  Any subset of the split archives builds those splits. Do not extract them;
  an extracted copy, or one in a bucket, builds too (docs/inputs.md).
  """

  def __init__(
      self,
      *,
      verify_checksums: bool | None = None,
      skip_bad_images: bool | None = None,
      resume: bool | None = None,
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
      resume: reuse the shards an interrupted build of the same inputs
        finished (`resume`); False deletes them and starts afresh. None
        (default) follows $IMAGENET2012_LOCAL_RESUME, on unless set to 0.
      **kwargs: passed to `tfds.core.GeneratorBasedBuilder`.
    """
    # Read once, here, and passed down: a bad value fails at once.
    self._settings = settings.read(verify_checksums, skip_bad_images, resume)
    # This build's settings, inputs and kept shards, once
    # `_download_and_prepare` knows the manual dir (`orchestration`).
    self._build: orchestration.Orchestration | None = None
    super().__init__(**kwargs)

  def download_and_prepare(self, *, download_config=None, **kwargs) -> None:
    """TFDS's, after two checks that fail at once, in two lines: the manual
    dir (`prepare_checks`: no archive, or an archive of a split a prepared
    dataset lacks), before TFDS makes any folder or reuses the dataset; then
    the version folder, claimed by this build (`build_lock`: a data dir that
    cannot be written, or another build of the same version). The claim is
    taken here, not in `_download_and_prepare`: TFDS makes its folders before
    that and publishes after it. A prepared version that TFDS reuses is not
    claimed, so a read-only data dir still serves it."""
    config = download_config or tfds.download.DownloadConfig()
    prepare_checks.check_manual_dir(self, config, kwargs.get('download_dir'))
    reused = self.is_prepared() and not config.download_mode.overwrite_dataset
    with (
        contextlib.nullcontext()
        if reused
        else build_lock.claimed(self.data_path, self.data_dir_root, '--data_dir')
    ):
      super().download_and_prepare(download_config=config, **kwargs)

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
      self, source: source_lib.Source
  ) -> Iterator[tuple[str, Mapping[str, object]]]:
    """TFDS's generator path: the same plan and reads as the sharded path,
    examples handed to TFDS's writer one by one."""
    skipped_members = {}
    tasks = self._plan_split(source, source.index(skipped=skipped_members))
    fixer = image_fixes.ImageFixer.of(source.reader(), self._settings.skip_bad_images)
    with verification.BackgroundHasher([source.check]) as hasher:
      for task in tasks:
        for name, data, label in shard_writer.fixed_examples(task, fixer):
          yield name, {'image': data, 'label': label, 'file_name': name}
        hasher.raise_if_failed()
      hasher.wait()  # Raises before anything is published if the digest is wrong.
    self._record_split(source, fixer.fixed, fixer.skipped, skipped_members)

  def _download_and_prepare(self, dl_manager, download_config) -> None:
    start = time.monotonic()
    on_beam = bool(download_config.beam_runner or download_config.beam_options)
    # Beam hands results back only at the end: its workers record shards.
    build = self._orchestration(dl_manager, flush_in_batches=not on_beam)
    build.refuse_to_delete_inputs()  # Before any work: nothing is lost.
    if download_config.max_examples_per_split is not None:
      path = 'tfds-generator'
      why = 'max_examples_per_split is set: TFDS writes what it takes'
      logging.info('Build path: %s (%s).', path, why)
      super()._download_and_prepare(dl_manager, download_config)
    elif on_beam:
      # Imported here: Beam's import cost only for builds that use it.
      from imagenet2012_local.engine import beam_generation  # pylint: disable=g-import-not-at-top

      path = 'beam'
      logging.info('Build path: beam (Beam options were given).')
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
      workers = build.settings.workers
      logging.info('Build path: sharded (shards written by %d process(es)).', workers)
      with orchestration.local_map(build.settings) as map_fn:
        self._generate_shards(self._split_sources(dl_manager), map_fn)
    stats = {'seconds': round(time.monotonic() - start, 3), 'path': path}
    if path == 'sharded':
      stats['workers'] = workers
    (self.data_path / paths.BUILD_STATS_FILE).write_text(json.dumps(stats))

  def _generate_shards(
      self,
      sources: Mapping[str, source_lib.Source],
      map_fn: shard_writer.MapFn = map,
  ) -> None:
    """The sharded path: shards written once each, digests computed alongside.

    Args:
      sources: the splits to build.
      map_fn: runs shard writing (see `run.write_all`).
    """
    written = self._build.write(
        sources, self._plan_split, self._layout(sources), map_fn
    )
    self.info.set_splits(tfds.core.SplitDict([
        tfds_internals.split_info(
            self,
            split,
            [r.num_examples for r in written.of_split(split)],
            sum(r.num_bytes for r in written.of_split(split)),
        )
        for split in sources
    ]))
    for split, source in sources.items():
      self._record_split(
          source, *written.fixed_and_skipped(split), written.skipped_members[split]
      )

  def _plan_split(
      self, source: source_lib.Source, index: archive_index.ArchiveIndex
  ) -> list[plan.ShardTask]:
    """The shards of one split (a variant may filter it: `subset_builder`)."""
    return tfds_layout.plan_split(source, index)

  def _layout(
      self, sources: Mapping[str, source_lib.Source]
  ) -> tfds_layout.TfdsLayout:
    """The shard files (a variant may relabel the examples: `real_builder`)."""
    return tfds_layout.TfdsLayout(self, sources)

  def _orchestration(
      self,
      dl_manager: tfds.download.DownloadManager,
      flush_in_batches: bool = True,
  ) -> orchestration.Orchestration:
    """This build's settings, manual dir and kept shards (`self._build`):
    made by `_download_and_prepare` from its download manager, once per build.

    The kept-shards folder lies beside the version folder (TFDS builds into
    a temporary `incomplete.*` folder that a killed build abandons).

    Raises:
      split_sources.MissingArchivesError: TFDS refuses the manual dir.
    """
    version_dir = self.data_path.parent / str(self.version)
    self._build = orchestration.Orchestration(
        self._manual_dir(dl_manager),
        self._settings,
        resume.KeptShards(
            f'{version_dir}{resume.FOLDER_SUFFIX}', flush_in_batches=flush_in_batches
        ),
        lambda: tfds_internals.stale_incomplete_dirs(version_dir),
    )
    return self._build

  @staticmethod
  def _manual_dir(dl_manager: tfds.download.DownloadManager) -> str | epath.Path:
    """The manual dir, a folder TFDS checked or a URL (read by `storage`)."""
    given = tfds_internals.manual_dir_as_given(dl_manager)
    if storage.is_remote(given):
      return given
    try:
      return epath.Path(dl_manager.manual_dir)
    except (AssertionError, OSError) as e:
      # TFDS's own check: a page of instructions, or NotADirectoryError for
      # a file. Ours names what the folder holds instead.
      raise split_sources.no_archives_error(given) from e

  def _post_download_and_prepare_hook(self) -> None:
    """After TFDS published the dataset: what interrupted builds left is stale."""
    super()._post_download_and_prepare_hook()
    if self._build is not None:
      self._build.clean_up()

  def _split_sources(
      self, dl_manager: tfds.download.DownloadManager
  ) -> dict[str, source_lib.Source]:
    """The inputs present, checked before any is read (`split_sources`)."""
    build = self._build or self._orchestration(dl_manager)
    sources = build.find_sources(self.data_dir_root)
    if sources.devkit:
      self.info.metadata['class_words'] = sources.devkit.words_by_wnid
    return sources.by_split

  def _record_split(
      self,
      source: source_lib.Source,
      fixed: Mapping[str, str],
      skipped_images: Mapping[str, str],
      skipped_members: Mapping[str, str],
  ) -> None:
    """Saves in the metadata, for the split: {file name: why} of the images
    fixed and skipped and of the entries that are no images; the input's checks."""
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
    key, name = source.metadata_key
    metadata.setdefault(key, {})[name] = {'split': source.split, **source.check.summary()}
