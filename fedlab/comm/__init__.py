"""Communication cost: codecs, message sizes, client sampling and a network model.

>>> import fedlab as fl
>>> h = fl.run(sites, uplink="topk-ef:0.01", clients_per_round=3, network="mixed")
>>> h.bytes("up"), fl.comm.timeline(h)            # bytes sent, simulated seconds
>>> fl.comm.model_sizes(["cnn", "resnet18"], codecs=["identity", "fp16", "int8"])

Figures (plotly, imported on first use): ``fl.comm.plots.accuracy_vs_mb`` and friends.
"""

from .availability import AVAILABILITY, Availability, get_availability
from .codecs import (
    CODECS,
    Cast,
    Chain,
    Codec,
    CodecContext,
    Delta,
    Identity,
    get_codec,
    roundtrip,
    serialized_size,
)
from .lossy import Int8, TopK
from .network import (
    PROFILES,
    Link,
    get_network,
    message_seconds,
    network_config,
    round_seconds,
    time_to_accuracy,
    timeline,
)
from .schedule import arrivals, elapsed, jobs, time_to_target
from .sizes import message_size, model_size, model_sizes
from .wire import Wire, participants_per_round, sample_sites

__all__ = ["AVAILABILITY", "Availability", "CODECS", "PROFILES", "arrivals", "elapsed",
           "get_availability", "jobs", "time_to_target", "Cast", "Chain", "Codec",
           "CodecContext", "Delta",
           "Identity", "Int8", "Link", "TopK", "Wire", "get_codec", "get_network",
           "message_seconds", "message_size", "model_size", "model_sizes", "network_config",
           "participants_per_round", "plots", "round_seconds", "roundtrip", "sample_sites",
           "serialized_size", "time_to_accuracy", "timeline"]


def __getattr__(name: str):
    if name == "plots":  # plotly imports on first use
        import importlib

        return importlib.import_module(".plots", __name__)
    raise AttributeError(f"module 'fedlab.comm' has no attribute {name!r}")
