"""Small test helpers.

``torch.optim`` imports ``torch._dynamo`` on first use (seconds of start-up) and
``torch.testing.assert_close`` pulls in more lazy imports; the loss tests only need a few lines
of each.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


class Adam:
    """Plain Adam (Kingma & Ba 2015) on a list of tensors, enough for the toy problems."""

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.params = [p for p in params if p.requires_grad]
        self.lr, (self.b1, self.b2), self.eps = lr, betas, eps
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        self.t = 0

    def step(self, loss: torch.Tensor) -> None:
        """Back-propagate ``loss`` and update the parameters."""
        for p in self.params:
            p.grad = None
        loss.backward()
        self.t += 1
        with torch.no_grad():
            for p, m, v in zip(self.params, self.m, self.v, strict=True):
                m.mul_(self.b1).add_(p.grad, alpha=1 - self.b1)
                v.mul_(self.b2).addcmul_(p.grad, p.grad, value=1 - self.b2)
                m_hat = m / (1 - self.b1**self.t)
                v_hat = v / (1 - self.b2**self.t)
                p.sub_(self.lr * m_hat / (v_hat.sqrt() + self.eps))


def assert_close(
    actual: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-5, atol: float = 1e-6
) -> None:
    """``torch.allclose`` with shapes checked and both tensors in the message."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert torch.allclose(actual, expected.to(actual.dtype), rtol=rtol, atol=atol), (
        actual,
        expected,
    )
