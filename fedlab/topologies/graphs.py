"""Site graphs for peer-to-peer learning: adjacency matrices and mixing matrices.

An adjacency matrix ``A`` is a symmetric 0/1 ``(n, n)`` array with a zero diagonal:
``A[i, j] = 1`` when sites ``i`` and ``j`` exchange models. A mixing matrix ``W`` says
how a site averages what it holds with what its neighbours send: after one gossip step
site ``i`` holds ``sum_j W[i, j] * x_j``. When ``W`` is symmetric and doubly
stochastic (rows and columns sum to one) every step keeps the average of the sites'
models, and on a connected graph the sites converge to that average.

Metropolis–Hastings weights (Xiao, Boyd and Lall, "A scheme for robust distributed
sensor fusion based on average consensus", IPSN 2005) give such a ``W`` from local
information only: ``W[i, j] = 1 / (1 + max(d_i, d_j))`` on an edge, where ``d`` is the
degree, and the rest of each row on the diagonal.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

__all__ = ["GRAPHS", "MIXINGS", "adjacency", "ring", "torus", "complete", "random_regular",
           "check_adjacency", "edges", "is_connected", "metropolis_hastings", "max_degree",
           "mixing_matrix", "spectral_gap"]

GraphName = Literal["ring", "torus", "complete", "random"]
GRAPHS: tuple[str, ...] = ("ring", "torus", "complete", "random")
MIXINGS: tuple[str, ...] = ("metropolis", "max-degree")
MAX_TRIES = 1000


def _empty(n: int) -> np.ndarray:
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    return np.zeros((n, n), dtype=int)


def _link(a: np.ndarray, i: int, j: int) -> None:
    if i != j:
        a[i, j] = a[j, i] = 1


def ring(n: int) -> np.ndarray:
    """Each site talks to the one before and the one after it (a cycle)."""
    a = _empty(n)
    for i in range(n):
        _link(a, i, (i + 1) % n)
    return a


def torus(n: int) -> np.ndarray:
    """A 2-D ``rows x cols`` grid wrapped at its edges (``rows`` the largest divisor of
    ``n`` not above ``sqrt(n)``, at least 2): each site talks to up to four neighbours."""
    rows = max((r for r in range(2, int(np.sqrt(n)) + 1) if n % r == 0), default=0)
    if rows == 0:
        raise ValueError(f"graph='torus' needs a number of sites that factors as rows x cols "
                         f"with rows, cols >= 2 (4, 6, 8, 9, ...), got {n}; use 'ring'")
    cols = n // rows
    a = _empty(n)
    for r in range(rows):
        for c in range(cols):
            i = r * cols + c
            _link(a, i, r * cols + (c + 1) % cols)
            _link(a, i, ((r + 1) % rows) * cols + c)
    return a


def complete(n: int) -> np.ndarray:
    """Every site talks to every other site (fully connected)."""
    return np.ones_like(_empty(n)) - np.eye(n, dtype=int)


def random_regular(n: int, degree: int = 3, seed: int = 0) -> np.ndarray:
    """A connected random graph where every site has exactly ``degree`` neighbours.

    Drawn by the pairing (configuration) model with its own ``default_rng(seed)``,
    rejecting multi-edges, self-loops and disconnected draws; gives up after
    ``MAX_TRIES`` draws and says so.
    """
    _empty(n)
    if not 1 <= degree < n or (n * degree) % 2:
        raise ValueError(f"degree must be in [1, n - 1] with n * degree even; got degree="
                         f"{degree!r} for n={n}")
    rng = np.random.default_rng(seed)
    for _ in range(MAX_TRIES):
        stubs = rng.permutation(np.repeat(np.arange(n), degree)).reshape(-1, 2)
        a = _empty(n)
        for i, j in stubs:
            if i == j or a[i, j]:
                break
            _link(a, int(i), int(j))
        else:
            if is_connected(a):
                return a
    raise ValueError(f"no connected simple {degree}-regular graph on {n} sites found in "
                     f"{MAX_TRIES} draws; try another degree or seed")


def check_adjacency(a, n: int | None = None) -> np.ndarray:
    """``a`` as a validated 0/1 adjacency matrix (square, symmetric, zero diagonal)."""
    arr = np.asarray(a)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise ValueError(f"graph must be a square adjacency matrix, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"graph has {arr.shape[0]} rows but the federation has {n} sites")
    if not np.isin(arr, (0, 1)).all():
        raise ValueError("graph must hold only 0 and 1 (1: the two sites talk)")
    if not (arr == arr.T).all():
        raise ValueError("graph must be symmetric: a link carries models both ways")
    if np.diag(arr).any():
        raise ValueError("graph must have a zero diagonal (no site links to itself)")
    return arr.astype(int)


def adjacency(graph: str | np.ndarray, n: int, degree: int = 3, seed: int = 0) -> np.ndarray:
    """The adjacency matrix of ``graph`` on ``n`` sites: a name from ``GRAPHS``
    (``"random"`` is :func:`random_regular` with ``degree`` and ``seed``) or a matrix."""
    if not isinstance(graph, str):
        return check_adjacency(graph, n)
    builders = {"ring": lambda: ring(n), "torus": lambda: torus(n),
                "complete": lambda: complete(n),
                "random": lambda: random_regular(n, degree, seed)}
    if graph not in builders:
        raise ValueError(f"graph must be one of {GRAPHS} or an adjacency matrix, got {graph!r}")
    return builders[graph]()


def edges(a: np.ndarray) -> list[tuple[int, int]]:
    """The undirected edges ``(i, j)`` with ``i < j``."""
    i, j = np.nonzero(np.triu(np.asarray(a)))
    return [(int(p), int(q)) for p, q in zip(i, j, strict=True)]


def is_connected(a: np.ndarray) -> bool:
    """True when every site can reach every other one along the graph's edges."""
    a = np.asarray(a)
    seen, frontier = {0}, [0]
    while frontier:
        nxt = [int(j) for i in frontier for j in np.nonzero(a[i])[0] if int(j) not in seen]
        seen.update(nxt)
        frontier = list(dict.fromkeys(nxt))
    return len(seen) == len(a)


def metropolis_hastings(a: np.ndarray) -> np.ndarray:
    """Metropolis–Hastings mixing matrix: symmetric, doubly stochastic, nonnegative."""
    a = check_adjacency(a)
    deg = a.sum(axis=1)
    w = a / (1.0 + np.maximum(deg[:, None], deg[None, :]))
    np.fill_diagonal(w, 1.0 - w.sum(axis=1))
    return w


def max_degree(a: np.ndarray) -> np.ndarray:
    """Max-degree mixing: ``1 / (1 + d_max)`` on every edge, the rest on the diagonal
    (also doubly stochastic; one global number, ``d_max``, must be known)."""
    a = check_adjacency(a)
    w = a / (1.0 + a.sum(axis=1).max())
    np.fill_diagonal(w, 1.0 - w.sum(axis=1))
    return w


def mixing_matrix(a: np.ndarray, rule: str = "metropolis") -> np.ndarray:
    """The mixing matrix of adjacency ``a`` by ``rule`` (one of ``MIXINGS``)."""
    if rule not in MIXINGS:
        raise ValueError(f"mixing must be one of {MIXINGS}, got {rule!r}")
    return metropolis_hastings(a) if rule == "metropolis" else max_degree(a)


def spectral_gap(w: np.ndarray) -> float:
    """``1 - |lambda_2|`` of a symmetric mixing matrix: how much one gossip step shrinks
    the sites' disagreement at worst (1: one step reaches the average; 0: never)."""
    eig = np.sort(np.abs(np.linalg.eigvalsh(np.asarray(w, dtype=float))))[::-1]
    return float(1.0 - eig[1]) if len(eig) > 1 else 1.0
