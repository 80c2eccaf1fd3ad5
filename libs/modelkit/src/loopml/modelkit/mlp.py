"""A multi-layer perceptron for tables: trained with PyTorch, served with NumPy.

`fit` imports torch lazily; after fitting the weights are kept as NumPy arrays only, so a pickled
model predicts without torch (the inference image does not carry it).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin


class _TabularMLP(BaseEstimator):
    _classification = False

    def __init__(
        self,
        hidden_units: int = 128,
        layers: int = 2,
        dropout: float = 0.1,
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-5,
        epochs: int = 30,
        batch_size: int = 128,
        random_state: int = 0,
    ):
        self.hidden_units = hidden_units
        self.layers = layers
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.epochs = epochs
        self.batch_size = batch_size
        self.random_state = random_state

    def _targets(self, y):
        raise NotImplementedError("a subclass says how targets are encoded (classes or values)")

    def fit(self, X, y, epoch_callback=None):
        """Train; `epoch_callback(epochs done)`, if given, runs after each epoch with the weights as they
        are then (so `predict` works inside it) and stops training by returning True."""
        import torch  # training only

        X = np.asarray(X, dtype=np.float32)
        target, outputs, loss_fn = self._targets(np.asarray(y))
        torch.manual_seed(self.random_state)
        torch.set_num_threads(1)
        sizes = [X.shape[1]] + [int(self.hidden_units)] * int(self.layers)
        modules = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
            modules += [torch.nn.Linear(n_in, n_out), torch.nn.ReLU(), torch.nn.Dropout(float(self.dropout))]
        modules.append(torch.nn.Linear(sizes[-1], outputs))
        net = torch.nn.Sequential(*modules)
        optimizer = torch.optim.AdamW(
            net.parameters(), lr=float(self.learning_rate), weight_decay=float(self.weight_decay)
        )
        features, labels = torch.from_numpy(X), torch.from_numpy(target)
        generator = torch.Generator().manual_seed(self.random_state)
        self.n_features_in_ = X.shape[1]
        for epoch in range(int(self.epochs)):
            net.train()
            order = torch.randperm(len(features), generator=generator)
            for start in range(0, len(order), int(self.batch_size)):
                batch = order[start : start + int(self.batch_size)]
                optimizer.zero_grad()
                loss = loss_fn(net(features[batch]), labels[batch])
                loss.backward()
                optimizer.step()
            if epoch_callback is not None:
                self._keep_weights(net)
                if epoch_callback(epoch + 1):
                    return self
        self._keep_weights(net)
        return self

    def _keep_weights(self, net) -> None:
        import torch

        linears = [m for m in net if isinstance(m, torch.nn.Linear)]
        self.weights_ = [m.weight.detach().numpy().T.copy() for m in linears]
        self.biases_ = [m.bias.detach().numpy().copy() for m in linears]

    def _forward(self, X) -> np.ndarray:
        out = np.asarray(X, dtype=np.float32)
        for i, (w, b) in enumerate(zip(self.weights_, self.biases_, strict=True)):
            out = out @ w + b
            if i < len(self.weights_) - 1:
                out = np.maximum(out, 0.0)
        return out


class TabularMLPClassifier(ClassifierMixin, _TabularMLP):
    """MLP classifier (cross-entropy); `predict_proba` columns follow `classes_`."""

    def _targets(self, y):
        import torch

        self.classes_, codes = np.unique(y, return_inverse=True)
        return codes.astype(np.int64), len(self.classes_), torch.nn.CrossEntropyLoss()

    def predict_proba(self, X) -> np.ndarray:
        logits = self._forward(X).astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


class TabularMLPRegressor(RegressorMixin, _TabularMLP):
    """MLP regressor (squared error on a standardised target)."""

    def _targets(self, y):
        import torch

        y = y.astype(np.float64)
        self.y_mean_, self.y_scale_ = float(y.mean()), float(y.std() or 1.0)
        target = ((y - self.y_mean_) / self.y_scale_).astype(np.float32).reshape(-1, 1)
        return target, 1, torch.nn.MSELoss()

    def predict(self, X):
        return self._forward(X)[:, 0].astype(np.float64) * self.y_scale_ + self.y_mean_
