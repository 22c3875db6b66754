"""From notebook to hospitals: a fedlab run deployed on Flower, or driven by MONAI FL.

- :func:`deploy_flower` (``fedlab deploy flower``; :mod:`fedlab.deploy.flower`) runs a
  ``fedlab run`` description as a real Flower federation on this machine: a SuperLink
  and one SuperNode per site as OS processes, TLS, each node with only its own site's
  file. The ServerApp and ClientApp (:mod:`fedlab.deploy.flower_app`) run fedlab's own
  server and client halves, so the weights are those of :func:`fedlab.run`.
- :class:`LocalFederation` (:mod:`fedlab.deploy.launch`) starts and always stops those
  processes; :func:`make_certificates` makes a run's TLS certificates.
- :class:`MonaiClient` (:mod:`fedlab.deploy.monai`) is a ``monai.fl`` ``ClientAlgo``
  running a strategy's client half, for NVIDIA FLARE's MONAI integration.

Needs ``pip install "fedlab-workbench[deploy]"`` (Flower) for the Flower parts.
"""

from __future__ import annotations

from typing import Any

from .certs import make_certificates
from .sites import RemoteSite, export_site, load_site, site_info

__all__ = ["LocalFederation", "MonaiClient", "RemoteSite", "deploy_flower", "export_site",
           "load_site", "make_certificates", "site_info"]


def __getattr__(name: str) -> Any:  # the Flower and MONAI FL parts import on first use
    if name == "deploy_flower":
        from .flower import deploy_flower

        return deploy_flower
    if name == "LocalFederation":
        from .launch import LocalFederation

        return LocalFederation
    if name == "MonaiClient":
        from .monai import MonaiClient

        return MonaiClient
    raise AttributeError(f"module 'fedlab.deploy' has no attribute {name!r}")
