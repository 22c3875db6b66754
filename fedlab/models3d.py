"""Networks for volumes ``(N, C, D, H, W)``: a small 3-D CNN and MONAI's 3-D UNet.

``create_model("cnn3d")`` classifies volumes (:class:`SmallCNN3d`: GroupNorm, a global
max-pool head, so any volume size fits); ``create_model("unet3d")`` segments them
(MONAI's ``UNet`` with ``spatial_dims=3`` and instance norm: both norms keep no running
statistics, which FedAvg would average across sites with different data). Every other
named model of :data:`fedlab.models.MODELS` takes 2-D images; :func:`check_dims` is the
clear error for a model asked to fit data of the other dimensionality.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

__all__ = ["SmallCNN3d", "SPATIAL_DIMS", "model_dims", "check_dims", "cnn3d", "unet3d"]

#: the named models that take volumes (spatial dims 3); every other name takes images
SPATIAL_DIMS: dict[str, int] = {"cnn3d": 3, "unet3d": 3}
_KIND = {2: "2-D images (N, C, H, W)", 3: "3-D volumes (N, C, D, H, W)"}


def model_dims(name: str) -> int:
    """The spatial dimensions (2 or 3) of the named model ``name``'s input."""
    return SPATIAL_DIMS.get(name, 2)


def check_dims(name: object, spatial_dims: int | None, names: Iterable[str]) -> None:
    """Raise a ``ValueError`` unless the model named ``name`` takes data of
    ``spatial_dims`` (2: images, 3: volumes); the message lists the models of ``names``
    that do. Nothing is checked when ``spatial_dims`` is None or ``name`` is not a name
    (a module or a factory of one's own)."""
    if spatial_dims is None or not isinstance(name, str) or model_dims(name) == spatial_dims:
        return
    fit = sorted(n for n in names if model_dims(n) == spatial_dims)
    raise ValueError(f"model {name!r} takes {_KIND[model_dims(name)]}, but the data are "
                     f"{_KIND.get(spatial_dims, f'{spatial_dims}-D')}: use one of {fit} "
                     "or an nn.Module of your own")


class SmallCNN3d(nn.Module):
    """Two 3-D conv blocks (conv-GroupNorm-ReLU-pool), a third conv and a max-pool head.

    The head takes the maximum of each feature over the whole volume (is a lesion-like
    pattern anywhere?), so the network fits volumes of any size of at least 4 voxels
    per side; ~18 k parameters at ``width=8`` (two classes).

    Parameters
    ----------
    in_channels, n_classes : int
        Channels of the input volumes; classes (outputs) of the task.
    width : int
        Channels of the first conv block (a multiple of 4; the next have 2 and 4 times).
    """

    def __init__(self, in_channels: int = 1, n_classes: int = 2, width: int = 8) -> None:
        super().__init__()

        def block(c_in: int, c_out: int) -> list[nn.Module]:
            return [nn.Conv3d(c_in, c_out, 3, padding=1), nn.GroupNorm(4, c_out), nn.ReLU()]

        self.features = nn.Sequential(
            *block(in_channels, width), nn.MaxPool3d(2),
            *block(width, 2 * width), nn.MaxPool3d(2),
            *block(2 * width, 4 * width),
        )
        self.head = nn.Sequential(nn.AdaptiveMaxPool3d(1), nn.Flatten(),
                                  nn.Linear(4 * width, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def cnn3d(in_channels: int = 1, n_classes: int = 2, image_size: int = 32) -> nn.Module:
    """The model of ``"cnn3d"``: :class:`SmallCNN3d` (``image_size`` is not needed)."""
    return SmallCNN3d(in_channels, n_classes)


def unet3d(in_channels: int = 1, n_classes: int = 3, image_size: int = 32) -> nn.Module:
    """The model of ``"unet3d"``: MONAI's ``UNet`` with ``spatial_dims=3``, two
    down-samplings of 8 -> 16 -> 32 channels and instance norm (~29 k parameters; one
    output channel per class). Each side of the volume must be a multiple of 4;
    ``image_size`` is not needed."""
    from monai.networks import nets  # slow import: only when asked for

    return nets.UNet(spatial_dims=3, in_channels=in_channels, out_channels=n_classes,
                     channels=(8, 16, 32), strides=(2, 2), num_res_units=0)
