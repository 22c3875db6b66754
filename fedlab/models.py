"""Model factories: a small CNN for CPU lessons, and MONAI networks for bigger ones."""

from __future__ import annotations

import copy
import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import nn

from .models3d import check_dims

__all__ = ["SmallCNN", "MLP", "MODELS", "ModelSpec", "create_model", "count_parameters",
           "state_bytes", "model_for_run", "reinitialised"]


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "group":
        return nn.GroupNorm(4, channels)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be 'group', 'batch' or 'none', got {kind!r}")


class SmallCNN(nn.Module):
    """Two conv blocks (conv-norm-ReLU-pool) and a two-layer head; ~0.2 M parameters.

    GroupNorm by default: BatchNorm's running statistics, averaged across sites with
    different data, are a known weak point of FedAvg (Hsieh et al., "The Non-IID Data
    Quagmire of Decentralized Machine Learning", ICML 2020). ``norm="batch"`` gives the
    BatchNorm variant (``"cnn-bn"``), which FedBN-style lessons need. Trains at about
    3,000 images of 28×28 per second on a 2-core CPU.

    Parameters
    ----------
    in_channels, n_classes : int
        Channels of the input images; classes (outputs) of the task.
    image_size : int
        Side of the square input images (two poolings: the head sees ``image_size // 4``).
    width : int
        Channels of the first conv block (the second has twice as many).
    norm : {"group", "batch", "none"}
        The normalisation layer after each convolution.
    """

    def __init__(self, in_channels: int = 1, n_classes: int = 2, image_size: int = 28,
                 width: int = 16, norm: str = "group") -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), _norm(norm, width), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), _norm(norm, 2 * width), nn.ReLU(),
            nn.MaxPool2d(2),
        )
        side = image_size // 4
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(2 * width * side * side, 128), nn.ReLU(),
            nn.Dropout(0.25), nn.Linear(128, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class MLP(nn.Module):
    """A one-hidden-layer perceptron: the smallest model, for tests and toy lessons.

    Parameters
    ----------
    in_channels, n_classes : int
        Channels of the input images; classes (outputs) of the task.
    image_size : int
        Side of the square input images.
    hidden : int
        Units of the hidden layer.
    """

    def __init__(self, in_channels: int = 1, n_classes: int = 2, image_size: int = 28,
                 hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(in_channels * image_size * image_size, hidden), nn.ReLU(),
            nn.Linear(hidden, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _monai(name: str) -> Callable[..., nn.Module]:
    def build(in_channels: int, n_classes: int, image_size: int) -> nn.Module:
        from monai.networks import nets  # slow import: only when asked for

        if name == "unet":
            # Ronneberger et al., "U-Net", MICCAI 2015; ~10 k parameters: two
            # down-samplings of 8 -> 16 -> 32 channels, instance norm, CPU-sized.
            return nets.UNet(spatial_dims=2, in_channels=in_channels, out_channels=n_classes,
                             channels=(8, 16, 32), strides=(2, 2), num_res_units=0)
        if name == "densenet121":
            return nets.DenseNet121(spatial_dims=2, in_channels=in_channels, out_channels=n_classes)
        return nets.ResNet(block="basic", layers=(2, 2, 2, 2), block_inplanes=(64, 128, 256, 512),
                           spatial_dims=2, n_input_channels=in_channels, num_classes=n_classes)
    return build


def _lazy(path: str, **options: Any) -> Callable[..., nn.Module]:
    """A builder that imports ``module:function`` only when a model is built."""
    def build(in_channels: int, n_classes: int, image_size: int) -> nn.Module:
        module, name = path.split(":")
        factory = getattr(importlib.import_module(module, __package__), name)
        return factory(in_channels, n_classes, image_size, **options)
    return build


MODELS: dict[str, Callable[..., nn.Module]] = {
    "cnn": SmallCNN,
    "cnn-bn": partial(SmallCNN, norm="batch"),
    "mlp": MLP,
    "resnet18": _monai("resnet18"),
    "densenet121": _monai("densenet121"),
    "unet": _monai("unet"),
    "recon-unet": _lazy(".recon_net:ReconUNet", data_consistency=False),
    "recon-unet-dc": _lazy(".recon_net:ReconUNet", data_consistency=True),
    "resnet-tiny": _lazy(".model_zoo:resnet_tiny"),
    "zoo": _lazy(".model_zoo:zoo"),
    "cnn3d": _lazy(".models3d:cnn3d"), "unet3d": _lazy(".models3d:unet3d"),  # volumes
}


def create_model(name: str = "cnn", in_channels: int = 1, n_classes: int = 2,
                 image_size: int = 28, spatial_dims: int | None = None) -> nn.Module:
    """Build a model by name: ``"cnn"`` (default), ``"cnn-bn"``, ``"mlp"``, MONAI's
    ``"resnet18"`` / ``"densenet121"`` (slow on CPU: use them on a GPU), MONAI's small
    ``"unet"`` for segmentation (one output channel per class; ``image_size`` a
    multiple of 4), or ``"recon-unet"`` / ``"recon-unet-dc"`` for reconstruction
    (:class:`~fedlab.recon_net.ReconUNet`, without / with data consistency),
    ``"resnet-tiny"`` (a small MONAI ResNet) or ``"zoo"`` (the CNN, the MLP and the tiny
    ResNet in one :class:`~fedlab.model_zoo.ModelZoo`, for model-agnostic FL); for
    volumes, ``"cnn3d"`` and ``"unet3d"`` (:mod:`fedlab.models3d`).

    ``name`` is a key of :data:`MODELS`; ``in_channels``, ``n_classes`` and
    ``image_size`` (the side of the square images) describe the data; ``spatial_dims``
    (2: images, 3: volumes), when given, must be the model's.
    """
    if name not in MODELS:
        raise ValueError(f"model must be one of {sorted(MODELS)} or an nn.Module, got {name!r}")
    check_dims(name, spatial_dims, MODELS)
    return MODELS[name](in_channels=in_channels, n_classes=n_classes, image_size=image_size)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters of ``model`` (``requires_grad=False`` not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def reinitialised(model: nn.Module, seed: int = 0) -> nn.Module:
    """A copy of ``model`` with every layer re-initialised from ``seed`` (the global
    random state is left as it was)."""
    net = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in net.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
    return net


def state_bytes(state: dict[str, torch.Tensor]) -> int:
    """Bytes of the raw tensors in a state dict (what one uncompressed message carries)."""
    return sum(t.numel() * t.element_size() for t in state.values())


ModelArg = str | nn.Module | Callable[[], nn.Module]


@dataclass(frozen=True)
class ModelSpec:
    """How to build a run's network, anywhere: in the run, in an executor's worker, or
    after the run to load a saved state. It pickles when ``model`` is a name, a module
    or a top-level factory.

    ``model``: a name of :data:`MODELS` (built with the data's shape), a module (copied,
    so the caller's stays untouched) or a factory returning one. ``in_channels``,
    ``n_classes`` and ``image_size`` (the images' width) serve to build a named model.
    """

    model: ModelArg = "cnn"
    in_channels: int = 1
    n_classes: int = 2
    image_size: int = 28

    @classmethod
    def for_sites(cls, model: ModelArg, sites: Sequence[Any]) -> ModelSpec:
        """The spec of ``model`` for the sites' data (channels, classes, image size)."""
        if isinstance(model, str) and model not in MODELS:
            raise ValueError(f"model must be one of {sorted(MODELS)}, an nn.Module or a "
                             f"factory, got {model!r}")
        if not isinstance(model, str | nn.Module) and not callable(model):
            raise TypeError(f"model must be a name, an nn.Module or a factory, got {type(model)}")
        x = sites[0].split("train").images  # the shape only (a deployed site has no images)
        check_dims(model, x.ndim - 2, MODELS)  # a module or a factory is not checked
        return cls(model, in_channels=int(x.shape[1]), n_classes=len(sites[0].classes),
                   image_size=int(x.shape[-1]))

    @property
    def label(self) -> str:
        """The name recorded in a run's config: the model's name or its class name."""
        return self.model if isinstance(self.model, str) else type(self.model).__name__

    def build(self, seed: int | None = None) -> nn.Module:
        """A new network; with ``seed``, its initial weights are those of that seed (the
        caller's global random state is left as it was)."""
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            if isinstance(self.model, nn.Module):
                return copy.deepcopy(self.model)
            if isinstance(self.model, str):
                return create_model(self.model, in_channels=self.in_channels,
                                    n_classes=self.n_classes, image_size=self.image_size)
            return self.model()


def model_for_run(config: Mapping[str, Any], sites: Sequence[Any],
                  model: nn.Module | None = None) -> nn.Module:
    """The network of a finished run, to load its saved states into: ``model`` when
    given, else built again from the name in the run's ``config`` (``History.config``).

    Parameters
    ----------
    config : mapping
        The run's configuration; its ``"model"`` entry names the network.
    sites : sequence of Site
        The run's sites: their data fix the input channels, classes and image size.
    model : nn.Module, optional
        The network to use as it is (needed for a run with a custom model).
    """
    if model is not None:
        return model
    name = config.get("model")
    if isinstance(name, str) and name in MODELS:
        return ModelSpec.for_sites(name, sites).build()
    raise ValueError(f"pass model=: the run used a custom model ({name!r}) that cannot be "
                     "rebuilt by name")
