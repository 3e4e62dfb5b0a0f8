// Matrix products C[b] = op(A[b]) * op(B[b]), op = identity or transpose (TRANS_A / TRANS_B), so
// reverse mode's A^T G and G B^T need no transposed copy.
//
// Build options: -DT=float|double, -DTRANS_A=0|1, -DTRANS_B=0|1, and the tile shape
// -DTSM (rows of C per work-group), -DTSN (columns), -DTSK (depth of one local-memory step),
// -DWPTM, -DWPTN (rows and columns of C computed by one work-item, held in registers).
// Any M, N, K: loads outside the matrices read zero, stores outside are skipped.
// Leading dimensions (lda, ldb, ldc) are in elements; *_batch is the element stride between
// batch items (0 broadcasts one operand over the batch).

#ifndef TRANS_A
#define TRANS_A 0
#endif
#ifndef TRANS_B
#define TRANS_B 0
#endif
#ifndef TSM
#define TSM 64
#endif
#ifndef TSN
#define TSN 64
#endif
#ifndef TSK
#define TSK 16
#endif
#ifndef WPTM
#define WPTM 4
#endif
#ifndef WPTN
#define WPTN 4
#endif

#define RTSM (TSM / WPTM)      // work-items along M
#define RTSN (TSN / WPTN)      // work-items along N
#define THREADS (RTSM * RTSN)

#if TRANS_A
#define A_AT(i, k) A[(long)(k) * lda + (i)]
#else
#define A_AT(i, k) A[(long)(i) * lda + (k)]
#endif
#if TRANS_B
#define B_AT(k, j) B[(long)(j) * ldb + (k)]
#else
#define B_AT(k, j) B[(long)(k) * ldb + (j)]
#endif

// Which (row, k) of A's tile and (k, column) of B's the id-th element of a tile load is: the
// contiguous axis of the operand varies fastest, so neighbouring work-items read neighbouring
// addresses.
#if TRANS_A
#define A_M(id) ((id) % TSM)
#define A_K(id) ((id) / TSM)
#else
#define A_K(id) ((id) % TSK)
#define A_M(id) ((id) / TSK)
#endif
#if TRANS_B
#define B_K(id) ((id) % TSK)
#define B_N(id) ((id) / TSK)
#else
#define B_N(id) ((id) % TSN)
#define B_K(id) ((id) / TSN)
#endif
#define LPTA ((TSK * TSM) / THREADS)
#define LPTB ((TSK * TSN) / THREADS)
#if (TSK * TSM) % THREADS || (TSK * TSN) % THREADS
#error "a tile's loads must split evenly over the work-items"
#endif

// The book's listing 10-3: one work-item per element of C, everything from global memory.
// Kept only as the baseline of bench/opencl_bench.py.
__kernel void gemm_naive(const int M, const int N, const int K,
                         __global const T *A, __global const T *B, __global T *C)
{
    const int j = get_global_id(0);
    const int i = get_global_id(1);
    if (i >= M || j >= N) return;
    T acc = 0;
    for (int k = 0; k < K; k++)
        acc += A[i * K + k] * B[k * N + j];
    C[i * N + j] = acc;
}

// Local id 0 runs along N. A work-item computes WPTM rows (strided by RTSM) times WPTN
// neighbouring columns of C, the columns as one vector (WPTN in 1, 2, 4, 8, 16): explicit SIMD on
// CPUs (PoCL), 64- to 512-bit local loads and coalesced vector stores on GPUs.
#if WPTN == 1
typedef T vecn;
#define VLOADN(p) (*(p))
#else
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
typedef CAT(T, WPTN) vecn;
#define VLOADN(p) CAT(vload, WPTN)(0, (p))
#endif

__kernel __attribute__((reqd_work_group_size(RTSN, RTSM, 1)))
void gemm_tiled(const int M, const int N, const int K,
                __global const T *A, const long a_off, const int lda, const long a_batch,
                __global const T *B, const long b_off, const int ldb, const long b_batch,
                __global T *C, const long c_off, const int ldc, const long c_batch,
                const int splits, const int k_chunk)
{
    const int tn = get_local_id(0);
    const int tm = get_local_id(1);
    const int tid = tm * RTSN + tn;
    const int m0 = get_group_id(1) * TSM;
    const int n0 = get_group_id(0) * TSN;
    // Dimension 2 runs over batch items times `splits` pieces of K (split-K: each piece writes its
    // own partial product, C[batch * splits + split], for the caller to sum).
    const long z = get_global_id(2);
    const long batch = z / splits;
    const int k_begin = (int)(z % splits) * k_chunk;
    const int k_end = min(K, k_begin + k_chunk);
    A += a_off + batch * a_batch;
    B += b_off + batch * b_batch;
    C += c_off + z * c_batch;

    // A's tile is stored k-major; with a row-major A, neighbouring work-items load neighbouring k,
    // so the rows are padded by 2: (TSM + 2) * k + m then falls in distinct local-memory banks.
    __local T As[TSK][TSM + 2];
    __local T Bs[TSK][TSN];

    vecn acc[WPTM];
    for (int wm = 0; wm < WPTM; wm++)
        acc[wm] = (vecn)0;

    // Each work-item moves LPTA elements of A's tile and LPTB of B's per step, walking along
    // whichever axis is contiguous in memory. The next step's elements are fetched into registers
    // before this step's arithmetic, so global-memory latency overlaps the multiply-adds.
    T a_next[LPTA], b_next[LPTB];
#define FETCH(k0)                                                                       \
    for (int l = 0; l < LPTA; l++) {                                                    \
        const int id = tid + l * THREADS;                                               \
        const int m = A_M(id), k = A_K(id), gm = m0 + m, gk = (k0) + k;                 \
        a_next[l] = (gm < M && gk < k_end) ? A_AT(gm, gk) : (T)0;                       \
    }                                                                                   \
    for (int l = 0; l < LPTB; l++) {                                                    \
        const int id = tid + l * THREADS;                                               \
        const int n = B_N(id), k = B_K(id), gn = n0 + n, gk = (k0) + k;                 \
        b_next[l] = (gn < N && gk < k_end) ? B_AT(gk, gn) : (T)0;                       \
    }

    FETCH(k_begin)
    for (int k0 = k_begin; k0 < k_end; k0 += TSK) {
        for (int l = 0; l < LPTA; l++) {
            const int id = tid + l * THREADS;
            As[A_K(id)][A_M(id)] = a_next[l];
        }
        for (int l = 0; l < LPTB; l++) {
            const int id = tid + l * THREADS;
            Bs[B_K(id)][B_N(id)] = b_next[l];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        if (k0 + TSK < k_end) {
            FETCH(k0 + TSK)
        }
        for (int k = 0; k < TSK; k++) {
            const vecn b = VLOADN(&Bs[k][tn * WPTN]);
            for (int wm = 0; wm < WPTM; wm++)
                acc[wm] += As[k][tm + wm * RTSM] * b;  // contracted to fma where the device has one
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }

    const int j0 = n0 + tn * WPTN;
    for (int wm = 0; wm < WPTM; wm++) {
        const int i = m0 + tm + wm * RTSM;
        if (i >= M) continue;
        __global T *c = C + (long)i * ldc + j0;
#if WPTN == 1
        if (j0 < N) c[0] = acc[wm];
#else
        if (j0 + WPTN <= N) {
            CAT(vstore, WPTN)(acc[wm], 0, c);
        } else {
            const T *lanes = (const T *)&acc[wm];
            for (int w = 0; w < WPTN && j0 + w < N; w++)
                c[w] = lanes[w];
        }
#endif
    }
}
