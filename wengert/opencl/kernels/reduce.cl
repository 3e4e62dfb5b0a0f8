// Reductions of a contiguous array viewed as [outer, R, inner] over its middle axis.
//
// A work-group is TX x TY work-items: TX neighbouring `inner` positions (so reads are
// contiguous), TY of them splitting the R axis. Each work-item folds its share of R
// sequentially, then the TY partial results meet in a tree in local memory. Group dimension 1
// may also split R into `chunks` pieces of `chunk` elements each, each writing its own partial
// result to out[outer, chunks, inner]; the caller reduces those in a second launch.
//
// Build options: -DT (element type), -DIS_FLOAT=0|1, -DTX, -DTY (powers of two),
// -DOP_SUM | -DOP_PROD | -DOP_MAX | -DOP_MIN, -DIDENTITY=<literal> (sum 0, prod 1, max lowest, ...);
// for arg_reduce -DARG_MAX | -DARG_MIN.

#if defined(OP_SUM)
#define COMBINE(a, b) ((a) + (b))
#elif defined(OP_PROD)
#define COMBINE(a, b) ((a) * (b))
#elif defined(OP_MAX)
#if IS_FLOAT   // NaN wins, like NumPy
#define COMBINE(a, b) (((a) > (b) || isnan(a)) ? (a) : (b))
#else
#define COMBINE(a, b) max((a), (b))
#endif
#elif defined(OP_MIN)
#if IS_FLOAT
#define COMBINE(a, b) (((a) < (b) || isnan(a)) ? (a) : (b))
#else
#define COMBINE(a, b) min((a), (b))
#endif
#endif

#ifdef COMBINE
__kernel __attribute__((reqd_work_group_size(TX, TY, 1)))
void reduce_axis(const long outer, const long R, const long inner, const long chunk,
                 __global const T *x, const long x_off, __global T *out, const long out_off)
{
    __local T part[TY][TX];
    const int lx = get_local_id(0), ly = get_local_id(1);
    const long i = get_global_id(0);
    const long c = get_group_id(1), chunks = get_num_groups(1);
    const long o = get_global_id(2);
    const long r_end = min(R, (c + 1) * chunk);
    T acc = IDENTITY;
    if (i < inner) {
        const __global T *row = x + x_off + o * R * inner + i;
        for (long r = c * chunk + ly; r < r_end; r += TY)
            acc = COMBINE(acc, row[r * inner]);
    }
    part[ly][lx] = acc;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = TY / 2; s > 0; s >>= 1) {
        if (ly < s)
            part[ly][lx] = COMBINE(part[ly][lx], part[ly + s][lx]);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (ly == 0 && i < inner)
        out[out_off + (o * chunks + c) * inner + i] = part[0][lx];
}
#endif

#if defined(ARG_MAX) || defined(ARG_MIN)
#ifdef ARG_MAX
#define BEYOND(a, b) ((a) > (b))
#else
#define BEYOND(a, b) ((a) < (b))
#endif
#if IS_FLOAT
#define ISNAN(a) isnan(a)
#else
#define ISNAN(a) 0
#endif
// Does (vb, ib) win over (va, ia)? The first NaN wins, then the extreme value, then the
// smaller index (NumPy's argmax/argmin).
#define WINS(vb, ib, va, ia) \
    ((ib) >= 0 && ((ia) < 0 || \
     (ISNAN(vb) ? (!ISNAN(va) || (ib) < (ia)) : \
      (!ISNAN(va) && (BEYOND(vb, va) || ((vb) == (va) && (ib) < (ia)))))))

__kernel __attribute__((reqd_work_group_size(TX, TY, 1)))
void arg_reduce(const long outer, const long R, const long inner,
                __global const T *x, const long x_off, __global long *out, const long out_off)
{
    __local T val[TY][TX];
    __local long idx[TY][TX];
    const int lx = get_local_id(0), ly = get_local_id(1);
    const long i = get_global_id(0);
    const long o = get_global_id(2);
    T best = 0;
    long at = -1;
    if (i < inner) {
        const __global T *row = x + x_off + o * R * inner + i;
        for (long r = ly; r < R; r += TY) {
            const T v = row[r * inner];
            if (WINS(v, r, best, at)) { best = v; at = r; }
        }
    }
    val[ly][lx] = best;
    idx[ly][lx] = at;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = TY / 2; s > 0; s >>= 1) {
        if (ly < s && WINS(val[ly + s][lx], idx[ly + s][lx], val[ly][lx], idx[ly][lx])) {
            val[ly][lx] = val[ly + s][lx];
            idx[ly][lx] = idx[ly + s][lx];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (ly == 0 && i < inner)
        out[out_off + o * inner + i] = idx[0][lx];
}
#endif
