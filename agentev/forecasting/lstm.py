"""An LSTM forecaster in JAX (optional extra: ``pip install 'agentev[lstm]'``).

The network reads the recent periods before the origin (``recent_R .. recent_1``, oldest
first) with one LSTM layer, joins its last hidden state with the calendar features
(time of day, shift, lead, ``lag_day``) and maps them through a dense layer to the forecast.
It is trained with Adam (optax) on the mean squared error of standardised targets, on the
CPU; its intervals are split-conformal (:class:`agentev.forecasting.models.Forecaster`).

Why JAX and optax rather than PyTorch, Keras or Flax: they install from PyPI as CPU wheels for
Python 3.12 in seconds (``jax``, ``jaxlib``, ``optax``, no CUDA download), and the whole
network is a few lines of ``jax.numpy`` with no framework state (no global backend setting
as Keras 3 needs, none of Flax's checkpointing dependencies).

Nothing else in agentev imports this module: ``import agentev`` works without the extra.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agentev.forecasting.models import Forecaster

LSTM_EXTRA = "pip install 'agentev[lstm]'"

try:
    import jax
    import jax.numpy as jnp
    import optax
except ImportError as err:  # pragma: no cover - exercised by a test that hides jax
    raise ImportError(
        f"the lstm forecaster needs JAX and optax, the optional extra 'lstm': {LSTM_EXTRA} "
        f"(missing: {err.name})"
    ) from err


def _init(key: Any, n_static: int, hidden: int, dense: int) -> dict[str, Any]:
    k = jax.random.split(key, 4)
    return {
        "wx": jax.random.normal(k[0], (1, 4 * hidden)) * 0.5,
        "wh": jax.random.normal(k[1], (hidden, 4 * hidden)) / np.sqrt(hidden),
        # forget gates open at the start (bias 1): the usual LSTM initialisation
        "b": jnp.zeros(4 * hidden).at[hidden : 2 * hidden].set(1.0),
        "w1": jax.random.normal(k[2], (hidden + n_static, dense)) / np.sqrt(hidden + n_static),
        "b1": jnp.zeros(dense),
        "w2": jax.random.normal(k[3], (dense, 1)) / np.sqrt(dense),
        "b2": jnp.zeros(1),
    }


def _forward(params: dict[str, Any], seq: Any, static: Any) -> Any:
    hidden = params["wh"].shape[0]
    n = seq.shape[0]

    def cell(carry: tuple[Any, Any], x_t: Any) -> tuple[tuple[Any, Any], None]:
        h, c = carry
        gates = x_t[:, None] @ params["wx"] + h @ params["wh"] + params["b"]
        i, f, g, o = jnp.split(gates, 4, axis=1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), None

    zeros = jnp.zeros((n, hidden))
    (h, _), _ = jax.lax.scan(cell, (zeros, zeros), seq.T)
    a = jnp.tanh(jnp.concatenate([h, static], axis=1) @ params["w1"] + params["b1"])
    return (a @ params["w2"] + params["b2"])[:, 0]


@jax.jit
def _loss(params: dict[str, Any], seq: Any, static: Any, y: Any) -> Any:
    return jnp.mean((_forward(params, seq, static) - y) ** 2)


_predict = jax.jit(_forward)


class LSTMForecaster(Forecaster):
    """One LSTM layer over the recent periods, a dense layer with the calendar features.

    Args:
        hidden_units: LSTM state size.
        dense_units: Units of the dense layer.
        epochs: Passes over the training rows.
        batch_size: Rows per Adam step.
        learning_rate: Adam's step size.
        random_state: Seed of the initial weights and the batch order.
        calibration_fraction: Share of the rows (the latest) that calibrate its intervals.
    """

    def __init__(
        self,
        hidden_units: int = 16,
        dense_units: int = 32,
        epochs: int = 30,
        batch_size: int = 256,
        learning_rate: float = 0.01,
        random_state: int | None = None,
        calibration_fraction: float = 0.25,
    ) -> None:
        self.hidden_units = hidden_units
        self.dense_units = dense_units
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.random_state = random_state
        self.calibration_fraction = calibration_fraction

    def _split(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # noqa: N803
        seq = (X[:, self.seq_index_] - self.y_mean_) / self.y_scale_
        static = (X[:, self.static_index_] - self.x_mean_) / self.x_scale_
        return seq.astype(np.float32), static.astype(np.float32)

    def _fit_point(self, X: np.ndarray, y: np.ndarray, starts: np.ndarray | None) -> None:  # noqa: N803
        names = list(getattr(self, "feature_names_in_", []))
        recent = sorted(
            (n for n in names if n.startswith("recent_")), key=lambda n: -int(n.split("_")[1])
        )
        if not recent:
            raise ValueError(
                "LSTMForecaster needs recent_1 .. recent_R feature columns: fit it on a "
                "DataFrame from agentev.forecasting.features"
            )
        self.seq_index_ = np.array([names.index(n) for n in recent])
        self.static_index_ = np.array([i for i, n in enumerate(names) if n not in recent])
        stat = X[:, self.static_index_]
        self.x_mean_, self.x_scale_ = stat.mean(axis=0), stat.std(axis=0) + 1e-9
        self.y_mean_, self.y_scale_ = float(y.mean()), float(y.std() + 1e-9)
        seq, static = self._split(X)
        target = ((y - self.y_mean_) / self.y_scale_).astype(np.float32)

        rng = np.random.default_rng(self.random_state)
        params = _init(
            jax.random.PRNGKey(int(rng.integers(2**31))),
            static.shape[1],
            self.hidden_units,
            self.dense_units,
        )
        opt = optax.adam(self.learning_rate)
        state = opt.init(params)

        @jax.jit
        def step(params: Any, state: Any, s: Any, st: Any, t: Any) -> tuple[Any, Any, Any]:
            loss, grads = jax.value_and_grad(_loss)(params, s, st, t)
            updates, state = opt.update(grads, state)
            return optax.apply_updates(params, updates), state, loss

        n = len(target)
        batch = min(self.batch_size, n)
        losses = []
        for _ in range(self.epochs):
            order = rng.permutation(n)
            # whole batches only, so the step compiles once
            for k in range(0, n - batch + 1, batch):
                rows = order[k : k + batch]
                params, state, loss = step(params, state, seq[rows], static[rows], target[rows])
            losses.append(float(loss))
        self.params_ = jax.tree_util.tree_map(np.asarray, params)
        self.loss_curve_ = np.array(losses)

    def _predict_mean(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        seq, static = self._split(X)
        out = np.asarray(_predict(self.params_, seq, static), dtype=float)
        return out * self.y_scale_ + self.y_mean_
