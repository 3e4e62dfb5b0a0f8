"""Matrix product with numpy.matmul semantics."""
from __future__ import annotations

import numpy as np

from ..types import TensorType
from . import ShapeError, define
from .common import broadcast_shapes, fmt, unify_dim


def _matmul_rule(env, a: TensorType, b: TensorType):
    if "bool" in (a.dtype, b.dtype):
        raise ShapeError(f"arithmetic on bool ({fmt(env, a)} @ {fmt(env, b)}); use cast(x, f32) first")
    if a.dtype != b.dtype:
        raise ShapeError(f"dtype mismatch: {fmt(env, a)} @ {fmt(env, b)}")
    if a.rank == 0 or b.rank == 0:
        raise ShapeError(f"`@` needs operands of rank >= 1, got {fmt(env, a)} @ {fmt(env, b)} (use `*` for scalars)")
    ash = a.shape if a.rank > 1 else (1,) + a.shape
    bsh = b.shape if b.rank > 1 else b.shape + (1,)
    unify_dim(env, ash[-1], bsh[-2],
              f"inner dimensions do not match: {fmt(env, a)} @ {fmt(env, b)} "
              f"({env.resolve(ash[-1])} vs {env.resolve(bsh[-2])})")
    batch = broadcast_shapes(env, ash[:-2], bsh[:-2])
    out = batch + ((ash[-2],) if a.rank > 1 else ()) + ((bsh[-1],) if b.rank > 1 else ())
    return TensorType(a.dtype, out)


define("matmul", _matmul_rule, np.matmul)


# ---------------------------------------------------------------- derivative rules
from .. import ops  # noqa: E402
from . import rules  # noqa: E402


def _as_matrices(a, b):
    """Promote 1-D operands as numpy.matmul does, returning how to undo it."""
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    return a2, b2


def _matmul_jvp(primals, tangents, out):
    """Tangents have a leading axis of directions; align it in front of the broadcast batch axes."""
    a, b = primals
    ta, tb = tangents
    a2, b2 = _as_matrices(a, b)
    batch = max(a2.ndim, b2.ndim) - 2

    def lead(t, promoted_shape):  # (B, *shape) -> (B, 1.., *promoted_shape) with `batch` batch axes
        t = t.reshape((t.shape[0],) + promoted_shape)
        return t.reshape((t.shape[0],) + (1,) * (batch - (len(promoted_shape) - 2)) + promoted_shape)
    result = None
    if ta is not None:
        result = np.matmul(lead(ta, a2.shape), b2)
    if tb is not None:
        term = np.matmul(a2, lead(tb, b2.shape))
        result = term if result is None else result + term
    return result.reshape((result.shape[0],) + out.shape)


def _matmul_vjp(g, out, a, b):
    pa, pb = ops.primal(a), ops.primal(b)
    a2 = ops.bind("reshape", a, shape=(1,) + pa.shape) if pa.ndim == 1 else a
    b2 = ops.bind("reshape", b, shape=pb.shape + (1,)) if pb.ndim == 1 else b
    g_shape = ops.primal(g).shape
    if pa.ndim == 1:
        g_shape = g_shape[:-1] + (1,) + g_shape[-1:] if pb.ndim > 1 else g_shape + (1,)
    if pb.ndim == 1:
        g_shape = g_shape + (1,)
    g2 = ops.bind("reshape", g, shape=g_shape)

    def swap(v):
        r = ops.primal(v).ndim
        return ops.bind("transpose", v, perm=tuple(range(r - 2)) + (r - 1, r - 2))
    ga = ops.unbroadcast(ops.bind("matmul", g2, swap(b2)), ops.primal(a2).shape)
    gb = ops.unbroadcast(ops.bind("matmul", swap(a2), g2), ops.primal(b2).shape)
    return ops.bind("reshape", ga, shape=pa.shape), ops.bind("reshape", gb, shape=pb.shape)


rules("matmul", _matmul_jvp, _matmul_vjp)


# ================================================================ linear algebra with derivatives
# Square matrices are the last two axes ([..., n, n], stacks broadcast as in numpy.linalg). JVP
# rules work on NumPy arrays whose tangents carry a leading axis of directions; VJP rules are
# written with primitives through `ops.bind`, so they differentiate again (HVPs, grad of grad).
def _square(env, a: TensorType, what: str) -> None:
    if a.dtype not in ("f32", "f64"):
        raise ShapeError(f"{what} needs a floating-point matrix, got {fmt(env, a)}")
    if a.rank < 2:
        raise ShapeError(f"{what} needs a matrix (rank >= 2), got {fmt(env, a)}")
    unify_dim(env, a.shape[-1], a.shape[-2], f"{what} needs square matrices, got {fmt(env, a)}")


def _square_rule(what: str, reduce: bool = False):
    def rule(env, a: TensorType, **_):
        _square(env, a, what)
        return TensorType(a.dtype, a.shape[:-2] if reduce else a.shape)
    return rule


def _rhs_rule(what: str):
    """A (square) and b: b is [..., n, k], or [n] with a single matrix A."""
    def rule(env, a: TensorType, b: TensorType, **_):
        _square(env, a, what)
        if a.dtype != b.dtype:
            raise ShapeError(f"dtype mismatch: {what}({fmt(env, a)}, {fmt(env, b)})")
        if b.rank == 1:
            if a.rank != 2:
                raise ShapeError(f"{what} of a stack of matrices needs b of rank >= 2, got {fmt(env, b)}")
            unify_dim(env, a.shape[-1], b.shape[0], f"{what}: {fmt(env, a)} and {fmt(env, b)} do not fit")
            return TensorType(b.dtype, b.shape)
        unify_dim(env, a.shape[-1], b.shape[-2], f"{what}: {fmt(env, a)} and {fmt(env, b)} do not fit")
        batch = broadcast_shapes(env, a.shape[:-2], b.shape[:-2])
        return TensorType(b.dtype, batch + tuple(b.shape[-2:]))
    return rule


def _as_columns(b):
    """b [n] as [n, 1] (NumPy); with the inverse."""
    return (b[..., None], lambda x: x[..., 0]) if b.ndim == 1 else (b, lambda x: x)


def _solve_np(a, b):
    cols, back = _as_columns(b)
    return back(np.linalg.solve(a, cols))


def _tri(a, lower: bool):
    return np.tril(a) if lower else np.triu(a)


def _triangular_solve_np(a, b, *, lower=True, transpose=False):
    t = _tri(a, lower)
    return _solve_np(np.swapaxes(t, -1, -2) if transpose else t, b)


def _lstsq_rule(env, a: TensorType, b: TensorType, **_):
    if a.dtype not in ("f32", "f64") or a.dtype != b.dtype:
        raise ShapeError(f"lstsq needs two floating-point operands of one dtype, got {fmt(env, a)} and {fmt(env, b)}")
    if a.rank != 2 or b.rank not in (1, 2):
        raise ShapeError(f"lstsq needs a matrix A [m, n] and b [m] or [m, k], got {fmt(env, a)} and {fmt(env, b)}")
    unify_dim(env, a.shape[0], b.shape[0], f"lstsq: {fmt(env, a)} and {fmt(env, b)} do not fit")
    return TensorType(a.dtype, (a.shape[1],) + tuple(b.shape[1:]))


def _cholesky_np(a):
    """The lower Cholesky factor of the symmetric part of a (only that part is read)."""
    return np.linalg.cholesky((a + np.swapaxes(a, -1, -2)) / 2)


define("inv", _square_rule("inv"), np.linalg.inv)
define("solve", _rhs_rule("solve"), _solve_np)
define("det", _square_rule("det", reduce=True), np.linalg.det)
define("logabsdet", _square_rule("slogdet", reduce=True), lambda a: np.linalg.slogdet(a)[1])
define("detsign", _square_rule("slogdet", reduce=True), lambda a: np.linalg.slogdet(a)[0], differentiable=False)
define("cholesky", _square_rule("cholesky"), _cholesky_np)
define("triangular_solve", _rhs_rule("triangular_solve"), _triangular_solve_np)
define("lstsq", _lstsq_rule, lambda a, b: np.linalg.lstsq(a, b, rcond=None)[0])
define("tril", lambda env, a, *, k=0: a, lambda a, *, k=0: np.tril(a, k))
define("triu", lambda env, a, *, k=0: a, lambda a, *, k=0: np.triu(a, k))


# ---- helpers over primitives (through bind: duals and traced values follow) ----
def _mT(v):
    r = ops.primal(v).ndim
    return ops.bind("transpose", v, perm=tuple(range(r - 2)) + (r - 1, r - 2))


def _mm(a, b):
    return ops.bind("matmul", a, b)


def _cols(v):
    """[n] -> [n, 1] through bind; with the inverse."""
    shape = ops.primal(v).shape
    if len(shape) != 1:
        return v, lambda x: x
    return ops.bind("reshape", v, shape=tuple(shape) + (1,)), lambda x: ops.bind("reshape", x, shape=tuple(shape))


def _unbatch(g, shape):
    """A cotangent of a broadcast stack of matrices summed back to an operand's shape."""
    return ops.unbroadcast(g, tuple(shape))


def _lift_matrix(t, primal_ndim: int):
    """A batched tangent (B, *shape) ready to broadcast against matrices of rank primal_ndim."""
    return lift(t, primal_ndim)


# inv: Y = A^-1, dY = -Y dA Y, Ā = -Yᵀ Ḡ Yᵀ
def _inv_jvp(primals, tangents, out):
    (t,) = tangents
    return None if t is None else -(out @ t @ out)


def _inv_vjp(g, out, a):
    yt = _mT(out)
    return (ops.neg(_mm(_mm(yt, g), yt)),)


rules("inv", _inv_jvp, _inv_vjp)


# solve: x = A^-1 b, dx = A^-1 (db - dA x); b̄ = A^-T ḡ, Ā = -b̄ xᵀ
def _solve_tangent(m, dm, b, tb, out):
    """The tangent of x = M^-1 b: M^-1 (db - dM x) (dM or db None when they do not move)."""
    x, back = _as_columns(out)
    rhs = 0
    if tb is not None:
        rhs = (tb[..., None] if b.ndim == 1 else tb)
    if dm is not None:
        rhs = rhs - dm @ x
    return back(np.linalg.solve(m, rhs))


def _solve_jvp(primals, tangents, out):
    (a, b), (ta, tb) = primals, tangents
    return _solve_tangent(a, ta, b, tb, out)


def _solve_vjp(g, out, a, b):
    gb = ops.bind("solve", _mT(a), g)
    gb2, _ = _cols(gb)
    x2, _ = _cols(out)
    ga = ops.neg(_mm(gb2, _mT(x2)))
    return _unbatch(ga, ops.primal(a).shape), _unbatch(gb, ops.primal(b).shape)


rules("solve", _solve_jvp, _solve_vjp)


# det: dd = d tr(A^-1 dA); Ā = ḡ d A^-T.  logabsdet: d tr(A^-1 dA); Ā = ḡ A^-T
def _trace_inv_times(a, t):
    return np.einsum("...ij,...ji->...", np.linalg.inv(a), t)


def _det_jvp(primals, tangents, out):
    (a,), (t,) = primals, tangents
    return None if t is None else out * _trace_inv_times(a, t)


def _matrix_scale(s):
    """A stack of scalars [...] as [..., 1, 1]."""
    shape = ops.primal(s).shape
    return ops.bind("reshape", s, shape=tuple(shape) + (1, 1))


def _det_vjp(g, out, a):
    return (ops.mul(_matrix_scale(ops.mul(g, out)), _mT(ops.bind("inv", a))),)


def _logabsdet_jvp(primals, tangents, out):
    (a,), (t,) = primals, tangents
    return None if t is None else _trace_inv_times(a, t)


def _logabsdet_vjp(g, out, a):
    return (ops.mul(_matrix_scale(g), _mT(ops.bind("inv", a))),)


rules("det", _det_jvp, _det_vjp)
rules("logabsdet", _logabsdet_jvp, _logabsdet_vjp)
rules("detsign", lambda p, t, out: None, lambda g, out, a: (None,))


# tril/triu are linear and their own transposes
rules("tril", lambda p, t, out, *, k=0: None if t[0] is None else np.tril(t[0], k),
      lambda g, out, a, *, k=0: (ops.bind("tril", g, k=k),))
rules("triu", lambda p, t, out, *, k=0: None if t[0] is None else np.triu(t[0], k),
      lambda g, out, a, *, k=0: (ops.bind("triu", g, k=k),))


# cholesky of S = (A + Aᵀ)/2: dL = L Φ(L^-1 dS L^-T) with Φ = tril with a halved diagonal;
# Ā = (P + Pᵀ)/2 for P = L^-T Φ(Lᵀ L̄) L^-1 (Murray 2016, for the symmetric part)
def _phi_np(x):
    return 0.5 * (np.tril(x) + np.tril(x, -1))


def _cholesky_jvp(primals, tangents, out):
    (t,) = tangents
    if t is None:
        return None
    sym = (t + np.swapaxes(t, -1, -2)) / 2
    inv_l = np.linalg.inv(out)
    return out @ _phi_np(inv_l @ sym @ np.swapaxes(inv_l, -1, -2))


def _phi(x):
    half = ops.const_like(0.5, x)
    return ops.mul(half, ops.add(ops.bind("tril", x, k=0), ops.bind("tril", x, k=-1)))


def _cholesky_vjp(g, out, a):
    inv_l = ops.bind("inv", out)
    p = _mm(_mm(_mT(inv_l), _phi(_mm(_mT(out), g))), inv_l)
    return (ops.mul(ops.const_like(0.5, p), ops.add(p, _mT(p))),)


rules("cholesky", _cholesky_jvp, _cholesky_vjp)


# triangular_solve: x = T^-1 b with T = tril(A) (or triu; or Tᵀ with transpose):
# dx = T^-1 (db - dT x); b̄ = T^-T ḡ, T̄ = -b̄ xᵀ, masked to T's triangle
def _triangular_solve_jvp(primals, tangents, out, *, lower=True, transpose=False):
    (a, b), (ta, tb) = primals, tangents

    def side(m):
        m = _tri(m, lower)
        return np.swapaxes(m, -1, -2) if transpose else m
    return _solve_tangent(side(a), None if ta is None else side(ta), b, tb, out)


def _triangular_solve_vjp(g, out, a, b, *, lower=True, transpose=False):
    gb = ops.bind("triangular_solve", a, g, lower=lower, transpose=not transpose)
    gb2, _ = _cols(gb)
    x2, _ = _cols(out)
    outer = ops.neg(_mm(x2, _mT(gb2)) if transpose else _mm(gb2, _mT(x2)))
    ga = ops.bind("tril" if lower else "triu", outer, k=0)
    return _unbatch(ga, ops.primal(a).shape), _unbatch(gb, ops.primal(b).shape)


rules("triangular_solve", _triangular_solve_jvp, _triangular_solve_vjp)


# lstsq (A of full column rank): x = (AᵀA)^-1 Aᵀ b, r = b - A x;
# dx = (AᵀA)^-1 (dAᵀ r - Aᵀ dA x + Aᵀ db); with z = (AᵀA)^-1 ḡ: b̄ = A z, Ā = r zᵀ - A z xᵀ
def _lstsq_jvp(primals, tangents, out):
    a, b = primals
    ta, tb = tangents
    x, back = _as_columns(out)
    bc, _ = _as_columns(b)
    rhs = 0
    if tb is not None:
        rhs = a.T @ (tb[..., None] if b.ndim == 1 else tb)
    if ta is not None:
        r = bc - a @ x
        rhs = rhs + np.swapaxes(ta, -1, -2) @ r - a.T @ (ta @ x)
    return back(np.linalg.solve(a.T @ a, rhs))


def _lstsq_vjp(g, out, a, b):
    at = _mT(a)
    z = ops.bind("solve", _mm(at, a), g)
    z2, _ = _cols(z)
    x2, _ = _cols(out)
    b2, _ = _cols(b)
    r = ops.sub(b2, _mm(a, x2))
    ga = ops.sub(_mm(r, _mT(z2)), _mm(_mm(a, z2), _mT(x2)))
    return ga, _mm(a, z)


rules("lstsq", _lstsq_jvp, _lstsq_vjp)
