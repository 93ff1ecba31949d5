"""Training and validation data from COCO-format annotation files.

A recipe lists *sources* (one annotation file + image folder each, see SourceSpec). Every source's
images split into a training part and a held-out validation part that the recipe names explicitly
(file names, source frames, or the whole source), so a split is reproducible from the config alone.

Training samples form an endless stream: sample i belongs to epoch i // epoch_size, and everything
random about it (which source and image, the transform, flip, colours, pasted people) comes from
numpy's Generator seeded with (seed, epoch, index within the epoch). A sample is therefore a pure
function of (seed, i), whatever the worker or the restart: resuming at step s only needs s.

LSPET-style sources (one_person: only one person per image is annotated, others are not) are
trained on crops centred on the annotated person, and everything outside that person's enlarged box
is marked ignore, so an unlabelled bystander inside the crop but outside the box is never taught as
background. People without masks (LSPET has none) leave the segmentation loss unset around them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .augment import AugmentConfig, PeopleSample, flip_sample, jitter_colour, sample_image_transform, \
    sample_person_transform, warp_sample
from .coco import AnnotationError, decode_segmentation, image_people, keypoint_array, load_annotations, \
    person_annotations
from ..network.config import ModelConfig
from .copy_paste import Donor, cut_donor, paste_donor
from ..network.kdcnet import IMAGENET_MEAN, IMAGENET_STD
from ..skeleton import NUM_KEYPOINTS
from .targets import encode_targets

# An unlabelled person's box (from its keypoints) is enlarged this much on each side before its
# surroundings are ignored: joints sit inside the body, and LSP has no head keypoints, so the top
# gets extra room for the head.
_BOX_MARGIN = 0.2
_HEAD_ROOM = 0.35


@dataclass
class SourceSpec:
    """One annotation file and its images, as a recipe's `data.sources` entry describes them."""

    name: str
    annotations: str                  # relative to the data root
    images: str                       # relative to the data root
    weight: float = 1.0               # share of the training stream drawn from this source
    masks: bool = True                # False: people have no segmentation; their pixels are unknown
    keypoints: list[int] | None = None  # keypoint channels the source labels (None: all 17)
    one_person: bool = False          # one annotated person per image: train on crops around them
    pseudo_keypoints: bool = False    # with --pseudo-labels: train on the teacher-filled file (kdc_ros.teacher)
    # Held-out validation images: None (none), "all", {"file_names": [...]} or {"frames": [...]}.
    val: object = None
    # The validation report this source's held-out images belong to (peer_accuracy's table rows).
    val_group: str = "coco_train2017"

    @classmethod
    def from_dict(cls, d: dict) -> "SourceSpec":
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"data source {d.get('name')!r}: unknown keys {sorted(unknown)}")
        return cls(**d)

    def keypoint_labelled(self) -> np.ndarray:
        labelled = np.ones(NUM_KEYPOINTS, bool)
        if self.keypoints is not None:
            labelled[:] = False
            labelled[list(self.keypoints)] = True
        return labelled


@dataclass
class ImageRecord:
    """One image of a source with its annotations."""

    path: Path
    info: dict
    annotations: list[dict]
    source: SourceSpec


def frame_key(info: dict) -> str:
    """The source frame an image was made from: `extra.name` (Roboflow exports) minus the '-_'
    prefixes its re-exports add, else the file name. Augmented copies of a frame share the key."""
    name = (info.get("extra") or {}).get("name") or info["file_name"]
    return re.sub(r"^(-_)+", "", name)


def load_source(spec: SourceSpec, data_root: str | Path,
                pseudo_root: str | Path | None = None) -> tuple[list[ImageRecord], list[ImageRecord]]:
    """(training records, validation records) of one source. When the source allows
    pseudo_keypoints and a pseudo_root is given, training records come from `pseudo_root/<name>.json`
    (written by kdc_ros.teacher); validation records always come from the real annotation file."""
    root = Path(data_root)
    data = load_annotations(root / spec.annotations)
    records = _records(data, root / spec.images, spec)
    held_out = _held_out(spec, records, root / spec.annotations)
    val = [r for r in records if held_out(r)]
    if spec.pseudo_keypoints and pseudo_root is not None:
        path = Path(pseudo_root) / f"{spec.name}.json"
        pseudo = load_annotations(path)
        if [i["file_name"] for i in pseudo["images"]] != [i["file_name"] for i in data["images"]]:
            raise AnnotationError(f"{path}: its images differ from {root / spec.annotations}; make it again")
        records = _records(pseudo, root / spec.images, spec)
    train = [r for r in records if not held_out(r)]
    return train, val


def _records(data: dict, images: Path, spec: SourceSpec) -> list[ImageRecord]:
    by_image: dict = {}
    for ann in data.get("annotations", []):
        by_image.setdefault(ann["image_id"], []).append(ann)
    return [ImageRecord(images / info["file_name"], info, by_image.get(info["id"], []), spec) for info in data["images"]]


def _held_out(spec: SourceSpec, records: list[ImageRecord], path: Path):
    """Predicate: is this record in the validation part of its source?"""
    if spec.val is None:
        return lambda r: False
    if spec.val == "all":
        return lambda r: True
    if isinstance(spec.val, dict) and set(spec.val) <= {"file_names", "frames"}:
        names, frames = set(spec.val.get("file_names", [])), set(spec.val.get("frames", []))
        known_names = {r.info["file_name"] for r in records}
        known_frames = {frame_key(r.info) for r in records}
        missing = sorted((names - known_names) | (frames - known_frames))
        if missing:  # a typo in a split would silently move images to training
            raise AnnotationError(f"{path}: validation split names {len(missing)} images/frames not in "
                                  f"the file (e.g. {missing[0]!r})")
        return lambda r: r.info["file_name"] in names or frame_key(r.info) in frames
    raise ValueError(f"data source {spec.name!r}: val must be null, 'all', or a dict of file_names/frames")


def load_sources(specs: list[SourceSpec], data_root: str | Path,
                 pseudo_root: str | Path | None = None) -> tuple[dict[str, list[ImageRecord]], list[ImageRecord]]:
    """({source name: training records}, all validation records) of a recipe's sources."""
    train, val = {}, []
    for spec in specs:
        t, v = load_source(spec, data_root, pseudo_root)
        train[spec.name] = t
        val.extend(v)
    return train, val


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"{path}: image missing or unreadable")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def person_box(keypoints: np.ndarray) -> np.ndarray | None:
    """(x0, y0, x1, y1) around one person's labelled keypoints, enlarged for the body and head."""
    labelled = keypoints[keypoints[:, 2] > 0, :2]
    if len(labelled) == 0:
        return None
    x0, y0 = labelled.min(axis=0)
    x1, y1 = labelled.max(axis=0)
    extent = max(x1 - x0, y1 - y0, 1.0)
    m = _BOX_MARGIN * extent
    return np.array([x0 - m, y0 - m - _HEAD_ROOM * extent, x1 + m, y1 + m], np.float32)


def box_region(box: np.ndarray, height: int, width: int) -> np.ndarray:
    """[H, W] bool: the pixels inside `box`."""
    region = np.zeros((height, width), bool)
    x0, y0 = max(int(np.floor(box[0])), 0), max(int(np.floor(box[1])), 0)
    x1, y1 = min(int(np.ceil(box[2])) + 1, width), min(int(np.ceil(box[3])) + 1, height)
    region[y0:y1, x0:x1] = True
    return region


def record_sample(record: ImageRecord) -> PeopleSample:
    """The full-resolution PeopleSample of one record (image read from disk)."""
    image = read_rgb(record.path)
    height, width = image.shape[:2]
    keypoints, masks, has_mask, ignore = image_people(record.annotations, height, width)
    if not record.source.masks:
        has_mask[:] = False
    if record.source.one_person:
        # Only the annotated person is known: everything outside their enlarged box is ignored.
        known = np.zeros((height, width), bool)
        for kp in keypoints:
            box = person_box(kp)
            if box is not None:
                known |= box_region(box, height, width)
        ignore |= ~known
    return PeopleSample(image, keypoints, masks, has_mask, ignore, record_keypoint_labelled(record))


def record_keypoint_labelled(record: ImageRecord) -> np.ndarray:
    """[17] bool: the keypoint channels labelled in this image: the source's own, plus the channels
    a teacher decided for its people (pseudo_keypoints)."""
    labelled = record.source.keypoint_labelled()
    for ann in record.annotations:
        labelled[ann.get("pseudo_keypoints") or []] = True
    return labelled


def normalise_image(image: np.ndarray) -> torch.Tensor:
    """RGB uint8 [H, W, 3] -> float [3, H, W] normalised with the ImageNet statistics the predictor uses."""
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (tensor - mean) / std


def sample_targets(sample: PeopleSample, config: ModelConfig) -> dict[str, torch.Tensor]:
    """encode_targets of a sample, with the loss switched off where the sample's labels are unknown:
    keypoint channels its source does not label, and the surroundings of people without masks."""
    height, width = sample.size
    targets = encode_targets(sample.keypoints, sample.masks, sample.ignore, image_size=(height, width),
                             stride=config.output_stride, radius=config.radius)
    unlabelled = torch.from_numpy(~sample.keypoint_labelled)
    if unlabelled.any():
        targets["heatmap_weight"][unlabelled] = 0.0
    maskless = [person_box(kp) for kp, has in zip(sample.keypoints, sample.has_mask) if not has]
    maskless = [b for b in maskless if b is not None]
    if maskless:
        unknown = np.zeros((height, width), bool)
        for box in maskless:
            unknown |= box_region(box, height, width)
        seg_weight = targets["seg_weight"]
        h, w = seg_weight.shape[-2:]
        s = config.output_stride
        # A map cell is unknown when any pixel it covers is.
        cells = unknown[:h * s, :w * s].reshape(h, s, w, s).any(axis=(1, 3))
        targets["seg_weight"] = seg_weight * torch.from_numpy(~cells).to(seg_weight.dtype)
    return targets


class DonorPool:
    """People that copy-paste may paste: masked, with enough labelled keypoints, from training records."""

    def __init__(self, records: list[ImageRecord], min_keypoints: int) -> None:
        self.entries: list[tuple[ImageRecord, int]] = []
        for record in records:
            if not record.source.masks or record.source.one_person:
                continue
            people, _ = person_annotations(record.annotations)
            for i, ann in enumerate(people):
                if ann.get("segmentation") and int((keypoint_array(ann)[:, 2] > 0).sum()) >= min_keypoints:
                    self.entries.append((record, i))
        self._cache: dict[int, Donor | None] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, index: int) -> Donor | None:
        # Cut-outs are small and the pool is a few hundred people: keep them once cut.
        if index not in self._cache:
            record, i = self.entries[index]
            image = read_rgb(record.path)
            ann = person_annotations(record.annotations)[0][i]
            mask = decode_segmentation(ann["segmentation"], image.shape[0], image.shape[1])
            self._cache[index] = cut_donor(image, mask, keypoint_array(ann), record_keypoint_labelled(record))
        return self._cache[index]


class TrainingStream(Dataset):
    """Endless augmented training samples; item i -> (normalised image [3, S, S], targets dict)."""

    def __init__(self, records: dict[str, list[ImageRecord]], weights: dict[str, float], config: ModelConfig,
                 crop_size: int, augment: AugmentConfig, seed: int = 0, epoch_size: int = 1000) -> None:
        if crop_size % 32:
            raise ValueError(f"crop_size must be a multiple of 32, not {crop_size}")
        self.sources = [name for name, recs in records.items() if recs and weights.get(name, 0) > 0]
        if not self.sources:
            raise ValueError("no training images (every source is empty, held out or weighted 0)")
        self.records = {name: records[name] for name in self.sources}
        w = np.array([weights[name] for name in self.sources], np.float64)
        self.probabilities = w / w.sum()
        self.config, self.crop_size, self.augment = config, crop_size, augment
        self.seed, self.epoch_size = seed, epoch_size
        all_records = [r for name in self.sources for r in self.records[name]]
        self.donors = DonorPool(all_records, augment.paste_min_keypoints)

    def __len__(self) -> int:
        return 2 ** 62  # endless: a sampler picks the indices

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        sample = self.sample(index)
        return normalise_image(sample.image), sample_targets(sample, self.config)

    def sample(self, index: int) -> PeopleSample:
        """The augmented PeopleSample of stream item `index` (before target encoding)."""
        epoch, position = divmod(int(index), self.epoch_size)
        rng = np.random.default_rng([self.seed, epoch, position])
        name = self.sources[rng.choice(len(self.sources), p=self.probabilities)]
        record = self.records[name][rng.integers(len(self.records[name]))]
        return self.augmented(record, rng)

    def augmented(self, record: ImageRecord, rng: np.random.Generator) -> PeopleSample:
        cfg, crop = self.augment, self.crop_size
        sample = record_sample(record)
        height, width = sample.size
        boxes = [person_box(kp) for kp in sample.keypoints]
        boxes = [b for b in boxes if b is not None]
        if record.source.one_person and boxes:
            matrix = sample_person_transform(rng, boxes[rng.integers(len(boxes))], crop, cfg)
        else:
            matrix = sample_image_transform(rng, height, width, crop, self.config.input_size, cfg)
        sample = warp_sample(sample, matrix, crop)
        if cfg.enabled and rng.random() < cfg.flip_prob:
            sample = flip_sample(sample)
        if cfg.enabled and len(self.donors) and rng.random() < cfg.copy_paste_prob:
            for _ in range(rng.integers(1, cfg.copy_paste_max + 1)):
                donor = self.donors.get(int(rng.integers(len(self.donors))))
                if donor is not None:
                    sample = paste_donor(rng, sample, donor, cfg)
        if cfg.enabled:
            sample = PeopleSample(jitter_colour(rng, sample.image, cfg), sample.keypoints, sample.masks,
                                  sample.has_mask, sample.ignore, sample.keypoint_labelled)
        return drop_absent_people(sample)


def drop_absent_people(sample: PeopleSample) -> PeopleSample:
    """Remove people left with no mask pixel and no labelled keypoint inside the crop."""
    height, width = sample.size
    kp = sample.keypoints
    inside = (kp[..., 2] > 0) & (kp[..., 0] >= 0) & (kp[..., 0] <= width - 1) & (kp[..., 1] >= 0) & (kp[..., 1] <= height - 1)
    keep = inside.any(axis=1) | sample.masks.reshape(len(kp), -1).any(axis=1)
    if keep.all():
        return sample
    return PeopleSample(sample.image, kp[keep], sample.masks[keep], sample.has_mask[keep], sample.ignore,
                        sample.keypoint_labelled)


class StepSampler(Sampler[int]):
    """Stream indices for steps [start_step, end_step): batch b of step s holds items s*B .. s*B + B - 1."""

    def __init__(self, batch_size: int, start_step: int, end_step: int) -> None:
        self.batch_size, self.start_step, self.end_step = batch_size, start_step, end_step

    def __iter__(self):
        return iter(range(self.start_step * self.batch_size, self.end_step * self.batch_size))

    def __len__(self) -> int:
        return max(self.end_step - self.start_step, 0) * self.batch_size


def _init_worker(_worker_id: int) -> None:
    # Each worker is one process on one core: more threads per worker would fight the main process.
    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def make_train_loader(stream: TrainingStream, batch_size: int, start_step: int, end_step: int,
                      num_workers: int = 2) -> DataLoader:
    """Batches for steps [start_step, end_step), decoded by `num_workers` single-threaded processes.

    Workers are spawned, not forked: a fork of a process whose OpenCV/OpenMP thread pools are
    running can deadlock in the child (the pools' locks are copied held)."""
    return DataLoader(stream, batch_size=batch_size, sampler=StepSampler(batch_size, start_step, end_step),
                      num_workers=num_workers, persistent_workers=num_workers > 0,
                      multiprocessing_context="spawn" if num_workers > 0 else None,
                      worker_init_fn=_init_worker if num_workers > 0 else None,
                      prefetch_factor=2 if num_workers > 0 else None, drop_last=True)


def validation_coco(records: list[ImageRecord]) -> tuple[dict, dict[int, Path]]:
    """(one COCO dict over all validation images, {image id: path}); ids renumbered, since sources'
    ids collide. Only person annotations are kept."""
    images, annotations, paths = [], [], {}
    for image_id, record in enumerate(records, start=1):
        info = {k: record.info[k] for k in ("file_name", "height", "width")}
        images.append({"id": image_id, **info})
        paths[image_id] = record.path
        people, crowds = person_annotations(record.annotations)
        for ann in people + crowds:
            ann = dict(ann, id=len(annotations) + 1, image_id=image_id, category_id=1)
            if not record.source.masks:
                ann.pop("segmentation", None)
            annotations.append(ann)
    categories = [{"id": 1, "name": "person", "supercategory": "person"}]
    return {"images": images, "annotations": annotations, "categories": categories}, paths
