"""Configuration of the network (ModelConfig) and of the PoseSeg decoder (DecoderConfig), and what a
letterbox side (input_size) may be.

A checkpoint stores `ModelConfig.to_dict()` next to the weights, so a model file is
self-describing. Defaults are the paper's / PersonLab's unless noted.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from ..skeleton import PGO_SIGMAS

BACKBONES = ("mobilenet_v2", "resnet50", "resnet101", "resnet152")
MIN_INPUT_SIZE = 32  # one cell of the coarsest backbone stage


@dataclass
class DecoderConfig:
    """Every threshold of the PoseSeg decoder (kdc_model.inference.decode), with its default."""

    peak_threshold: float = 0.1        # min Hough score of a peak that may seed/extend a person
    peak_nms_radius: float = 10.0      # px: a peak this close to the same keypoint of a person is skipped (r)
    pgo_sigmas: tuple[float, ...] = PGO_SIGMAS  # point-wise Gaussian optimisation, map cells, per keypoint
    # These defaults decode exact maps exactly (test_decode_roundtrip). A trained network's offsets are
    # noisy: its recipe's `model.decoder` section sets wider values chosen on COCO photographs, which
    # its checkpoints carry (kdc_model/configs/default.yaml; docs/training.md, entry 7).
    vote_bandwidth: float = 0.75       # px at reference input 401 (scaled to the input like match_radius): Gaussian width of the KeyCentroid vote mean-shift; same-type keypoints of two people closer than ~2 bandwidths merge
    refine_steps: int = 2              # short-offset refinement steps for a mid-range proposal
    match_radius: float = 32.0         # px at reference input 401: snap a proposal to a peak this close
    mid_min_support: float = 0.5       # fraction of a point's vote weight whose cells must carry a non-zero mid-range offset for the edge to be followed
    mid_consistency: float = 0.5       # disk radii: a proposal whose reverse mid-range offset misses its parent by more is rejected
    keypoint_threshold: float = 0.01   # keypoints under this confidence are reported with confidence 0
    min_person_score: float = 0.03     # people scoring lower are dropped (0.03 x 17 keypoints: about half a keypoint of evidence, so a person showing one keypoint at the image edge survives)
    max_people: int = 100
    # Bounds on the grouping's work, whatever the maps (textures that fire everywhere, crowds): only the
    # best `max_peaks` peaks are queued, and grouping stops after `max_candidates` people, before they
    # are scored (soft NMS and min_person_score then drop many). Real frames stay far below both.
    max_peaks: int = 1000
    max_candidates: int = 200
    # One person stays one person: people whose found keypoints are of disjoint types are joined when
    # the MaskCentroid embeddings at each one's keypoints point at the other's within this fraction
    # of the joined person's scale (0 = never join). Partly labelled or occluded people (hips hidden
    # by a table) otherwise come back as separate pieces of the kinematic tree.
    merge_distance: float = 0.15
    # Joining pieces compares every person cell with every candidate: only the first `merge_candidates`
    # people (queue order: the best-seeded) are checked, which bounds it on maps that fire everywhere.
    merge_candidates: int = 32
    seg_threshold: float = 0.5         # a pixel is a person pixel when segmentation > this
    membership_threshold: float = 0.5  # phi > 0.5 assigns a pixel to a person (paper §3.4)
    mask_sigma: float = 0.21           # membership sigma, in units of the person's scale
    centroid_min_confidence: float = 0.1  # keypoints at least this confident act as dynamic MaskCentroids
    instance_smoothing_sigma: float = 0.5  # instance-wise Gaussian optimisation, map cells (0 = off)
    # A person score that ranks people by how right they are: weights of a linear function of each
    # decoded person's features (kdc_model.inference.decode.PERSON_FEATURES), fitted on training
    # photographs to predict the mean of the person's OKS and mask IoU with its true person
    # (kdc_model.training.score_fit). () keeps the keypoint score above.
    score_weights: tuple[float, ...] = ()

    def to_dict(self) -> dict:
        d = asdict(self)
        d["pgo_sigmas"] = list(self.pgo_sigmas)
        d["score_weights"] = list(self.score_weights)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "DecoderConfig":
        return _from_dict(cls, d)


@dataclass
class ModelConfig:
    """What builds a KDC network; stored inside every checkpoint."""

    backbone: str = "mobilenet_v2"
    output_stride: int = 8             # heads are predicted at input/stride
    neck_channels: int = 64
    head_channels: int = 64
    head_depth: int = 1                # separable 3x3 blocks per head; those after the first are residual
    # The letterbox side the network is trained at, and its default side at inference. It fixes the
    # disk radius in pixels (radius), hence the offset heads' scale and the decoder's radius: another
    # side at inference is load_model(input_size=...), never an edited config (kdc_model.network.weights).
    input_size: int = 321
    # More letterbox sides the network runs at by default, besides input_size: their people are merged
    # with input_size's (kdc_model.inference.multiscale), so people too small for input_size and people
    # too big for the larger side are both found. An inference setting, chosen on COCO photographs for
    # the trained network; load_model(input_size=...) or (multi_scale=...) replaces it.
    multi_scale: tuple[int, ...] = ()
    disk_radius: float = 32.0          # px at input 401 (paper); scaled by input_size / 401 (radius)
    loss_weights: dict = field(default_factory=lambda: {
        "heatmap": 4.0, "short": 1.0, "mid": 0.25, "seg": 2.0, "embed": 0.125})
    decoder: DecoderConfig = field(default_factory=DecoderConfig)

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {self.backbone!r}; choose one of {BACKBONES}")
        if self.head_depth < 1:
            raise ValueError(f"head_depth must be at least 1, not {self.head_depth}")
        if self.output_stride not in (4, 8, 16):
            raise ValueError(f"output_stride must be 4, 8 or 16, not {self.output_stride}")
        if isinstance(self.decoder, dict):
            self.decoder = DecoderConfig.from_dict(self.decoder)
        self.multi_scale = tuple(self.multi_scale)
        for side in self.multi_scale:
            if (reason := input_size_problem(side)) is not None:
                raise ValueError(reason.replace("input_size", "multi_scale"))

    @property
    def radius(self) -> float:
        """Disk radius in input pixels, fixed by the side the network is trained at."""
        return self.disk_radius * self.input_size / 401.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["decoder"] = self.decoder.to_dict()
        d["multi_scale"] = list(self.multi_scale)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        return _from_dict(cls, d)


def _from_dict(cls, d: dict):
    known = {f.name for f in fields(cls)}
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown keys {sorted(unknown)}")
    d = dict(d)
    for key in ("pgo_sigmas", "score_weights"):
        if key in d:
            d[key] = tuple(float(v) for v in d[key])
    return cls(**d)


def input_size_problem(input_size: int | None) -> str | None:
    """Why `input_size` cannot be a letterbox side, or None when it can (None = the network's own)."""
    if input_size is None:
        return None
    if isinstance(input_size, bool) or not isinstance(input_size, int):
        return f"input_size must be a whole number of pixels, not {input_size!r}"
    if input_size < MIN_INPUT_SIZE:
        return f"input_size must be at least {MIN_INPUT_SIZE}, not {input_size}"
    return None
