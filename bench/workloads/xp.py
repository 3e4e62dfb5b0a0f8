"""NumPy-like namespaces for PyTorch, JAX and autograd, so that each workload's loss is written
once (`make_loss(xp)`) for all three. Only what the workloads use, with NumPy's signatures."""
from __future__ import annotations

from types import SimpleNamespace


def torch_xp() -> SimpleNamespace:
    import torch

    def reduce(method):
        def f(a, axis=None, keepdims=False):
            return getattr(a, method)() if axis is None else getattr(a, method)(dim=axis, keepdim=keepdims)
        return f

    return SimpleNamespace(
        name="torch", exp=torch.exp, log=torch.log, tanh=torch.tanh, sin=torch.sin, cos=torch.cos,
        sigmoid=torch.sigmoid, relu=torch.relu, clip=torch.clamp, sum=reduce("sum"), mean=reduce("mean"),
        max=lambda a, axis=None, keepdims=False: a.amax() if axis is None else a.amax(dim=axis, keepdim=keepdims),
        concatenate=lambda xs, axis=0: torch.cat(list(xs), dim=axis), reshape=torch.reshape,
        zeros=lambda shape, like: torch.zeros(shape, dtype=like.dtype))


def jax_xp(jax) -> SimpleNamespace:
    jnp = jax.numpy
    return SimpleNamespace(
        name="jax", exp=jnp.exp, log=jnp.log, tanh=jnp.tanh, sin=jnp.sin, cos=jnp.cos,
        sigmoid=jax.nn.sigmoid, relu=jax.nn.relu, clip=jnp.clip, sum=jnp.sum, mean=jnp.mean, max=jnp.max,
        concatenate=jnp.concatenate, reshape=jnp.reshape,
        zeros=lambda shape, like: jnp.zeros(shape, dtype=like.dtype), jax=jax)


def autograd_xp() -> SimpleNamespace:
    import autograd.numpy as anp
    return SimpleNamespace(
        name="autograd", exp=anp.exp, log=anp.log, tanh=anp.tanh, sin=anp.sin, cos=anp.cos,
        sigmoid=lambda z: 1 / (1 + anp.exp(-z)), relu=lambda a: anp.maximum(a, 0), clip=anp.clip,
        sum=anp.sum, mean=anp.mean, max=anp.max, concatenate=anp.concatenate, reshape=anp.reshape,
        zeros=lambda shape, like: anp.zeros(shape, dtype=like.dtype))
