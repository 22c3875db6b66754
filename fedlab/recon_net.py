"""The reconstruction network: a small MONAI U-Net that learns what to add to the
zero-filled image, with an optional data-consistency step.

Predicting a residual over the zero-filled input (rather than the image from scratch)
is the usual start of learned MRI reconstruction (e.g. the fastMRI U-Net baseline,
Zbontar et al. 2018; Jin et al., "Deep Convolutional Neural Network for Inverse
Problems in Imaging", IEEE TIP 2017): at initialisation the network already returns
the zero-filled image, and it only has to learn the aliasing. With complex inputs
(real, imaginary, mask) it corrects both channels and returns the magnitude; with
``data_consistency=True`` the measured k-space samples are put back before the
magnitude is taken (:func:`fedlab.data.kspace.data_consistency`).
"""

from __future__ import annotations

import torch
from torch import nn

from .data.kspace import data_consistency

__all__ = ["ReconUNet"]


class ReconUNet(nn.Module):
    """Zero-filled image plus a U-Net's correction; ~60 k parameters.

    Parameters
    ----------
    in_channels : int
        3 for complex inputs (real, imaginary, mask), 2 for magnitude inputs (magnitude,
        mask), as :class:`~fedlab.data.kspace.Acquisition` makes them.
    n_classes : int
        Output channels: 1 (the image).
    image_size : int
        Side of the square images, a multiple of 4 (two down-samplings).
    data_consistency : bool
        Re-insert the measured k-space samples (complex inputs only).
    channels : tuple of int
        Channels of the U-Net's levels.
    """

    def __init__(self, in_channels: int = 3, n_classes: int = 1, image_size: int = 28,
                 data_consistency: bool = False, channels: tuple[int, ...] = (16, 32, 64)
                 ) -> None:
        super().__init__()
        from monai.networks import nets  # slow import: only when asked for

        if in_channels not in (2, 3):
            raise ValueError(f"a reconstruction model takes inputs of 3 channels (real, "
                             f"imaginary, mask) or 2 (magnitude, mask) made by "
                             f"fl.data.make_reconstruction, got in_channels={in_channels}")
        if n_classes != 1:
            raise ValueError(f"a reconstruction model outputs one image channel, got "
                             f"n_classes={n_classes}: are these reconstruction sites?")
        if image_size % 4:
            raise ValueError(f"image_size must be a multiple of 4, got {image_size}")
        self.complex = in_channels == 3
        if data_consistency and not self.complex:
            raise ValueError("data_consistency=True needs complex inputs (real, imaginary, "
                             "mask): make the data with input='complex'")
        self.data_consistency = data_consistency
        out = 2 if self.complex else 1
        self.unet = nets.UNet(spatial_dims=2, in_channels=in_channels, out_channels=channels[0],
                              channels=channels, strides=(2,) * (len(channels) - 1),
                              num_res_units=1)
        # a zero-initialised last layer: the untrained model returns the zero-filled image
        self.head = nn.Conv2d(channels[0], out, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward_complex(self, x: torch.Tensor) -> torch.Tensor:
        """The complex image ``(N, H, W)`` before its magnitude (complex inputs only)."""
        r = self.head(self.unet(x))
        image = torch.complex(x[:, 0] + r[:, 0], x[:, 1] + r[:, 1])
        return data_consistency(image, x) if self.data_consistency else image

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.complex:
            return self.forward_complex(x).abs()[:, None]
        return x[:, :1] + self.head(self.unet(x))
