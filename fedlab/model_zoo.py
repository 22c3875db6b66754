"""Several architectures in one network: the model of a federation whose sites differ.

Model-agnostic FL (FedMD, :mod:`fedlab.strategies.fedmd`) lets every hospital train
a network of its own choosing. fedlab's engine builds, checkpoints and scores one
network per run; :class:`ModelZoo` is that network for a heterogeneous federation: it
holds every member architecture and a buffer, ``member``, that says which one runs.
A site's state is the whole zoo with its own member selected (:func:`select`), so
loading a site's state loads its architecture, and nothing in the engine changes. Only
the selected member trains at a site (the others take no part in its forward pass, so
they get no gradients); what the sites exchange is predictions, never weights.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

__all__ = ["ModelZoo", "select", "DEFAULT_MEMBERS", "resnet_tiny", "zoo"]

#: the members of ``model="zoo"``: three families, from 50 k to 0.3 M parameters
DEFAULT_MEMBERS = ("cnn", "mlp", "resnet-tiny")


class ModelZoo(nn.Module):
    """Member networks by name, of which the ``member`` buffer's one runs.

    Parameters
    ----------
    members : mapping of str to nn.Module
        The architectures, by name (at least one); they must take the same input and
        give the same number of outputs.
    """

    def __init__(self, members: Mapping[str, nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ValueError("members must name at least one network")
        self.members = nn.ModuleDict(dict(members))
        self.names = tuple(members)
        self.register_buffer("member", torch.zeros((), dtype=torch.long))

    @classmethod
    def from_names(cls, names: Sequence[str] = DEFAULT_MEMBERS, in_channels: int = 1,
                   n_classes: int = 2, image_size: int = 28) -> ModelZoo:
        """A zoo of named fedlab models (``"cnn"``, ``"mlp"``, ``"resnet-tiny"``, ...)."""
        from .models import create_model

        return cls({name: create_model(name, in_channels, n_classes, image_size)
                    for name in names})

    @property
    def active(self) -> str:
        """The name of the member that runs."""
        return self.names[int(self.member)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.members[self.active](x)


def select(state: dict[str, torch.Tensor], names: Sequence[str], name: str
           ) -> dict[str, torch.Tensor]:
    """A zoo's state with member ``name`` selected."""
    if name not in names:
        raise ValueError(f"member must be one of {list(names)}, got {name!r}")
    return {**state, "member": torch.tensor(list(names).index(name))}


def zoo(in_channels: int = 1, n_classes: int = 2, image_size: int = 28) -> ModelZoo:
    """The zoo of ``model="zoo"``: :data:`DEFAULT_MEMBERS` for this data's shape."""
    return ModelZoo.from_names(DEFAULT_MEMBERS, in_channels, n_classes, image_size)


def resnet_tiny(in_channels: int = 1, n_classes: int = 2, image_size: int = 28) -> nn.Module:
    """MONAI's ResNet with one basic block per stage and 16-128 channels (~0.3 M
    parameters): a different family from the small CNN, small enough for a CPU."""
    from monai.networks import nets

    return nets.ResNet(block="basic", layers=(1, 1, 1, 1), block_inplanes=(16, 32, 64, 128),
                       spatial_dims=2, n_input_channels=in_channels, num_classes=n_classes,
                       conv1_t_size=3, conv1_t_stride=1)
