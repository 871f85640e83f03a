"""Forecasting models with the scikit-learn estimator API.

Every model learns one quantity from the rows of :mod:`agentev.forecasting.features` and has

* ``fit(X, y)`` and ``predict(X)`` (the mean forecast), ``get_params`` / ``set_params``;
* ``predict_interval(X, confidence)``: a central prediction interval;
* ``predict_quantile(X, q)``: an upper quantile (``0.5 < q < 1``), for robust planning.

The Gaussian process has its own predictive distribution (``predict(X, return_std=True)``).
The others get split-conformal intervals from MAPIE (:class:`mapie.regression.
SplitConformalRegressor`): a copy of the model is fitted on the first
``1 - calibration_fraction`` of the rows (time order) and conformalised on the rest; the
interval is the full model's mean plus or minus the conformal half-width. The upper
``q``-quantile is the upper end of the central ``2q - 1`` interval.

Randomness: ``random_state`` (an int, as scikit-learn wants); :func:`agentev.forecasting.
make_forecaster` draws it from the model's numpy Generator.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy.stats import norm
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.ensemble import RandomForestRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

#: Anscombe's variance-stabilising shift for counts: ``sqrt(y + 3/8)``.
ANSCOMBE_SHIFT = 3.0 / 8.0


def _check_q(q: float) -> None:
    if not 0.5 < q < 1.0:
        raise ValueError(f"quantile q = {q}: allowed: 0.5 < q < 1 (an upper quantile)")


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence = {confidence}: allowed: 0 < confidence < 1")


class Forecaster(RegressorMixin, BaseEstimator):
    """Base class: a point model plus intervals (its own, or split-conformal ones).

    Subclasses implement ``_fit_point(X, y)`` and ``_predict_mean(X)``; those with their own
    predictive distribution set ``native_intervals`` and override :meth:`predict_interval`.
    """

    native_intervals = False
    calibration_fraction: float = 0.25

    def fit(self, X: Any, y: Any, target_start_min: Any = None) -> Forecaster:  # noqa: N803
        """Fit the model on all rows, and (without own intervals) calibrate conformal ones.

        Args:
            X: Feature rows (a DataFrame from :mod:`agentev.forecasting.features`).
            y: Targets.
            target_start_min: Start of each row's target period (minutes), optional: rows
                with the same start share one observation (the Gaussian process keeps one).
        """
        X, y = self._validate(X, y)  # noqa: N806
        starts = None if target_start_min is None else np.asarray(target_start_min, float)
        if starts is not None and len(starts) != len(y):
            raise ValueError(
                f"{len(starts)} target_start_min for {len(y)} rows: allowed: one per row"
            )
        self._fit_point(X, y, starts)
        self.conformal_ = None
        if not self.native_intervals:
            n_cal = int(round(len(y) * self.calibration_fraction))
            if not 1 <= n_cal < len(y) - 1:
                raise ValueError(
                    f"calibration_fraction = {self.calibration_fraction} of {len(y)} rows: "
                    "allowed: at least one row for calibration and two for fitting"
                )
            point = clone(self)
            for attr in ("feature_names_in_", "n_features_in_"):
                if hasattr(self, attr):
                    setattr(point, attr, getattr(self, attr))
            point._fit_point(X[:-n_cal], y[:-n_cal], None if starts is None else starts[:-n_cal])
            self.conformal_ = _ConformalIntervals(point, X[-n_cal:], y[-n_cal:])
        return self

    def predict(self, X: Any) -> np.ndarray:  # noqa: N803
        """Mean forecast of each row."""
        check_is_fitted(self)
        return self._predict_mean(self._validate(X))

    def predict_interval(self, X: Any, confidence: float = 0.9) -> tuple[np.ndarray, np.ndarray]:  # noqa: N803
        """Lower and upper end of the central ``confidence`` prediction interval."""
        _check_confidence(confidence)
        mean = self.predict(X)
        half = self.conformal_.half_width(self._validate(X), confidence)
        return mean - half, mean + half

    def predict_quantile(self, X: Any, q: float) -> np.ndarray:  # noqa: N803
        """Upper ``q``-quantile of each row's forecast (``0.5 < q < 1``)."""
        _check_q(q)
        return self.predict_interval(X, 2.0 * q - 1.0)[1]

    # ------------------------------------------------------------- helpers
    def _validate(self, X: Any, y: Any = None) -> Any:  # noqa: N803
        cols = getattr(X, "columns", None)
        X = np.asarray(X, dtype=float)  # noqa: N806
        if X.ndim != 2:
            raise ValueError(f"X has shape {X.shape}: allowed: 2-D (rows x features)")
        if cols is not None and y is not None:
            self.feature_names_in_ = np.asarray(cols, dtype=object)
        if y is None:
            fitted = getattr(self, "feature_names_in_", None)
            if cols is not None and fitted is not None and list(cols) != list(fitted):
                raise ValueError(
                    f"X has columns {', '.join(cols)}: allowed: the fitted ones, in order "
                    f"({', '.join(fitted)})"
                )
            return X
        y = np.asarray(y, dtype=float).ravel()
        if len(y) != len(X):
            raise ValueError(f"{len(X)} rows of X and {len(y)} targets: allowed: as many")
        self.n_features_in_ = X.shape[1]
        return X, y

    def _column(self, name: str) -> int:
        names = list(getattr(self, "feature_names_in_", []))
        if name not in names:
            raise ValueError(
                f"{type(self).__name__} needs feature column {name!r}: fit it on a DataFrame "
                "from agentev.forecasting.features (columns: "
                f"{', '.join(names) if names else 'none named'})"
            )
        return names.index(name)

    def _fit_point(self, X: np.ndarray, y: np.ndarray, starts: np.ndarray | None) -> None:  # noqa: N803
        raise NotImplementedError

    def _predict_mean(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        raise NotImplementedError


class _PointModel(RegressorMixin, BaseEstimator):
    """A fitted forecaster's point predictions, as MAPIE's prefit estimator."""

    def __init__(self, forecaster: Forecaster | None = None) -> None:
        self.forecaster = forecaster

    def fit(self, X: Any, y: Any) -> _PointModel:  # noqa: N803
        """Prefit: nothing to do."""
        self.fitted_ = True
        return self

    def predict(self, X: Any) -> np.ndarray:  # noqa: N803
        """The forecaster's mean."""
        return self.forecaster._predict_mean(np.asarray(X, dtype=float))


class _ConformalIntervals:
    """Split-conformal half-widths from MAPIE, one conformalised regressor per confidence."""

    def __init__(self, point: Forecaster, x_cal: np.ndarray, y_cal: np.ndarray) -> None:
        self.point = _PointModel(point).fit(x_cal, y_cal)
        self.x_cal, self.y_cal = x_cal, y_cal
        self._by_confidence: dict[float, Any] = {}

    def half_width(self, X: np.ndarray, confidence: float) -> np.ndarray:  # noqa: N803
        from mapie.regression import SplitConformalRegressor  # only where intervals are asked

        key = round(float(confidence), 9)
        mapie = self._by_confidence.get(key)
        if mapie is None:
            mapie = SplitConformalRegressor(
                self.point, confidence_level=key, conformity_score="absolute", prefit=True
            ).conformalize(self.x_cal, self.y_cal)
            self._by_confidence[key] = mapie
        _, bounds = mapie.predict_interval(X, allow_infinite_bounds=True)
        return 0.5 * (bounds[:, 1, 0] - bounds[:, 0, 0])


class SeasonalNaiveForecaster(Forecaster):
    """The same period one day earlier (feature ``lag_day``): the baseline to beat.

    Args:
        calibration_fraction: Share of the rows (the latest) that calibrate its intervals.
    """

    def __init__(self, calibration_fraction: float = 0.25) -> None:
        self.calibration_fraction = calibration_fraction

    def _fit_point(self, X: np.ndarray, y: np.ndarray, starts: np.ndarray | None) -> None:  # noqa: N803
        self.lag_index_ = self._column("lag_day")

    def _predict_mean(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        return X[:, self.lag_index_].copy()


class RandomForestForecaster(Forecaster):
    """A random forest (:class:`sklearn.ensemble.RandomForestRegressor`) on the features.

    Args:
        n_estimators: Trees.
        min_samples_leaf: Rows per leaf at least (smooths the counts' noise).
        max_features: Features tried per split (share or count).
        random_state: Seed of the forest.
        calibration_fraction: Share of the rows (the latest) that calibrate its intervals.
    """

    def __init__(
        self,
        n_estimators: int = 100,
        min_samples_leaf: int = 10,
        max_features: float | int = 0.6,
        random_state: int | None = None,
        calibration_fraction: float = 0.25,
    ) -> None:
        self.n_estimators = n_estimators
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.random_state = random_state
        self.calibration_fraction = calibration_fraction

    def _fit_point(self, X: np.ndarray, y: np.ndarray, starts: np.ndarray | None) -> None:  # noqa: N803
        self.forest_ = RandomForestRegressor(
            n_estimators=self.n_estimators,
            min_samples_leaf=self.min_samples_leaf,
            max_features=self.max_features,
            random_state=self.random_state,
        ).fit(X, y)

    def _predict_mean(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        return self.forest_.predict(X)


class GaussianProcessForecaster(Forecaster):
    """A Gaussian process with its own predictive distribution.

    :class:`sklearn.gaussian_process.GaussianProcessRegressor`.

    Kernel: constant x RBF with one length scale per (standardised) feature, plus white
    noise; hyperparameters by maximum marginal likelihood. With ``target_transform="sqrt"``
    (default) it models ``z = sqrt(y + 3/8)`` (Anscombe's transform), whose noise is nearly
    constant for counts (Poisson: variance = mean) and which keeps a count of 0 inside the
    intervals of quiet periods; a Gaussian ``z ~ N(mu, s^2)`` gives ``y = z^2 - 3/8`` with
    mean ``mu^2 + s^2 - 3/8``, variance ``4 mu^2 s^2 + 2 s^4`` and quantiles
    ``max(0, max(0, mu + z_q s)^2 - 3/8)`` (exact: the transform is monotone).

    Args:
        max_samples: Rows it fits on at most (a random subset; exact GPs cost O(n^3)).
        target_transform: ``"sqrt"`` or ``"none"``.
        random_state: Seed of the subset and the optimiser.
        calibration_fraction: Unused (its intervals are its own); kept for a common API.
    """

    native_intervals = True

    def __init__(
        self,
        max_samples: int = 500,
        target_transform: str = "sqrt",
        random_state: int | None = None,
        calibration_fraction: float = 0.25,
    ) -> None:
        self.max_samples = max_samples
        self.target_transform = target_transform
        self.random_state = random_state
        self.calibration_fraction = calibration_fraction

    def _fit_point(self, X: np.ndarray, y: np.ndarray, starts: np.ndarray | None) -> None:  # noqa: N803
        if self.target_transform not in ("sqrt", "none"):
            raise ValueError(
                f"target_transform = {self.target_transform!r}: allowed: 'sqrt', 'none'"
            )
        if self.target_transform == "sqrt" and (y < 0).any():
            raise ValueError("target_transform = 'sqrt' with negative targets: allowed: y >= 0")
        rng = np.random.default_rng(self.random_state)
        rows = np.arange(len(y))
        if starts is not None:
            # one row per target period: its other rows (other leads) repeat the same
            # observation, and the GP would take the repeats for independent, quiet data
            rows = rng.permutation(rows)
            rows = rows[np.unique(starts[rows], return_index=True)[1]]
        if len(rows) > self.max_samples:
            rows = rng.choice(rows, size=self.max_samples, replace=False)
        rows = np.sort(rows)
        X, y = X[rows], y[rows]  # noqa: N806
        self.scaler_ = StandardScaler().fit(X)
        z = np.sqrt(y + ANSCOMBE_SHIFT) if self.target_transform == "sqrt" else y
        d = X.shape[1]
        kernel = ConstantKernel(1.0, (1e-3, 1e3)) * RBF(np.ones(d), (1e-2, 1e3)) + WhiteKernel(
            0.5, (1e-4, 1e2)
        )
        # one BLAS thread: at a few hundred rows threads gain nothing, and on a machine whose
        # cores are busy (parallel runs) they spin and wait: 50 s instead of 5 s measured
        with warnings.catch_warnings(), threadpool_limits(1, user_api="blas"):
            # a length scale at its upper bound is a feature the GP found irrelevant: fine
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.gp_ = GaussianProcessRegressor(
                kernel, normalize_y=True, random_state=int(rng.integers(2**31))
            ).fit(self.scaler_.transform(X), z)

    def _latent(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # noqa: N803
        with threadpool_limits(1, user_api="blas"):
            mu, s = self.gp_.predict(self.scaler_.transform(X), return_std=True)
        return mu, s

    def _predict_mean(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        return self.predict(X)

    def predict(self, X: Any, return_std: bool = False) -> Any:  # noqa: N803
        """Mean forecast of each row, and its standard deviation with ``return_std``."""
        check_is_fitted(self)
        mu, s = self._latent(self._validate(X))
        if self.target_transform == "sqrt":
            mean = mu**2 + s**2 - ANSCOMBE_SHIFT
            std = np.sqrt(4 * mu**2 * s**2 + 2 * s**4)
        else:
            mean, std = mu, s
        return (mean, std) if return_std else mean

    def predict_interval(self, X: Any, confidence: float = 0.9) -> tuple[np.ndarray, np.ndarray]:  # noqa: N803
        """Central interval from the GP's predictive distribution (exact under the transform)."""
        _check_confidence(confidence)
        check_is_fitted(self)
        mu, s = self._latent(self._validate(X))
        z = norm.ppf(0.5 + confidence / 2.0)
        low, high = mu - z * s, mu + z * s
        if self.target_transform == "sqrt":

            def back(z: np.ndarray) -> np.ndarray:
                return np.maximum(np.maximum(z, 0.0) ** 2 - ANSCOMBE_SHIFT, 0.0)

            return back(low), back(high)
        return low, high


class EnsembleForecaster(Forecaster):
    """The weighted mean of several forecasters' means, with conformal intervals.

    Args:
        estimators: ``(name, forecaster)`` pairs; default: a random forest and a Gaussian
            process (the naive baseline is what it is compared with, so it is not a member).
        weights: One weight per member (default: equal).
        random_state: Seed handed to the default members.
        calibration_fraction: Share of the rows (the latest) that calibrate its intervals.
    """

    def __init__(
        self,
        estimators: list[tuple[str, Forecaster]] | None = None,
        weights: list[float] | None = None,
        random_state: int | None = None,
        calibration_fraction: float = 0.25,
    ) -> None:
        self.estimators = estimators
        self.weights = weights
        self.random_state = random_state
        self.calibration_fraction = calibration_fraction

    def _members(self) -> list[tuple[str, Forecaster]]:
        if self.estimators is not None:
            return self.estimators
        return [
            ("random_forest", RandomForestForecaster(random_state=self.random_state)),
            ("gaussian_process", GaussianProcessForecaster(random_state=self.random_state)),
        ]

    def _fit_point(self, X: np.ndarray, y: np.ndarray, starts: np.ndarray | None) -> None:  # noqa: N803
        members = self._members()
        if not members:
            raise ValueError("estimators is empty: allowed: one forecaster or more")
        w = np.ones(len(members)) if self.weights is None else np.asarray(self.weights, float)
        if len(w) != len(members) or (w < 0).any() or w.sum() <= 0:
            raise ValueError(
                f"weights = {self.weights}: allowed: {len(members)} non-negative weights, not all 0"
            )
        self.weights_ = w / w.sum()
        self.members_ = []
        for name, est in members:
            member = clone(est)
            if hasattr(self, "feature_names_in_"):
                member.feature_names_in_ = self.feature_names_in_
            member.n_features_in_ = X.shape[1]
            # its mean only: the ensemble calibrates its own intervals
            member._fit_point(X, y, starts)
            self.members_.append((name, member))

    def _predict_mean(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        preds = np.stack([m._predict_mean(X) for _, m in self.members_])
        return self.weights_ @ preds
