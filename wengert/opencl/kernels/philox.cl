// Counter-based random numbers: Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy
// as 1, 2, 3", SC'11; the Random123 constants). Block i of a draw encrypts the counter
// (i_lo, i_hi, ctr_lo, ctr_hi) under the key (key_lo, key_hi): no state, so any element can be
// computed by any work-item, and the same (key, counter) gives the same numbers on every run.
//
// Build options: -DT=float|double.

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

inline uint4 philox4x32_10(uint4 c, uint2 k)
{
    for (int round = 0; round < 10; round++) {
        const uint hi0 = mul_hi(PHILOX_M0, c.x), lo0 = PHILOX_M0 * c.x;
        const uint hi1 = mul_hi(PHILOX_M1, c.z), lo1 = PHILOX_M1 * c.z;
        c = (uint4)(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
        k.x += PHILOX_W0;
        k.y += PHILOX_W1;
    }
    return c;
}

inline uint4 block(const ulong i, const ulong ctr, const ulong key)
{
    return philox4x32_10((uint4)((uint)i, (uint)(i >> 32), (uint)ctr, (uint)(ctr >> 32)),
                         (uint2)((uint)key, (uint)(key >> 32)));
}

// The raw 32-bit words of blocks first, first + 1, ... (4 per block): for the known-answer tests.
__kernel void philox_bits(const ulong n, const ulong ctr, const ulong key, __global uint *out, const ulong first)
{
    const ulong i = get_global_id(0);
    if (4 * i >= n) return;
    const uint4 r = block(first + i, ctr, key);
    const uint w[4] = {r.x, r.y, r.z, r.w};
    for (int j = 0; j < 4 && 4 * i + j < n; j++) out[4 * i + j] = w[j];
}

// Uniform in [0, 1) with every value a multiple of 2^-24 (float) or 2^-53 (double): exact, so
// identical on every device.
#ifdef ENABLE_FP64
#define PER_BLOCK 2
inline void uniforms(const uint4 r, T u[2])
{
    u[0] = (T)((ulong)(r.x >> 5) << 26 | (r.y >> 6)) * 0x1.0p-53;  // 27 + 26 bits
    u[1] = (T)((ulong)(r.z >> 5) << 26 | (r.w >> 6)) * 0x1.0p-53;
}
#else
#define PER_BLOCK 4
inline void uniforms(const uint4 r, T u[4])
{
    u[0] = (T)(r.x >> 8) * 0x1.0p-24f;
    u[1] = (T)(r.y >> 8) * 0x1.0p-24f;
    u[2] = (T)(r.z >> 8) * 0x1.0p-24f;
    u[3] = (T)(r.w >> 8) * 0x1.0p-24f;
}
#endif

__kernel void philox_uniform(const ulong n, const ulong ctr, const ulong key, __global T *out, const ulong off)
{
    const ulong i = get_global_id(0);
    if (PER_BLOCK * i >= n) return;
    T u[PER_BLOCK];
    uniforms(block(i, ctr, key), u);
    for (int j = 0; j < PER_BLOCK && PER_BLOCK * i + j < n; j++) out[off + PER_BLOCK * i + j] = u[j];
}

// Standard normal by Box-Muller on pairs of uniforms (1 - u keeps the logarithm finite).
__kernel void philox_normal(const ulong n, const ulong ctr, const ulong key, __global T *out, const ulong off)
{
    const ulong i = get_global_id(0);
    if (PER_BLOCK * i >= n) return;
    T u[PER_BLOCK];
    uniforms(block(i, ctr, key), u);
    T z[PER_BLOCK];
    for (int j = 0; j < PER_BLOCK; j += 2) {
        const T radius = sqrt((T)-2 * log((T)1 - u[j]));
        const T theta = (T)(2 * M_PI) * u[j + 1];
        z[j] = radius * cos(theta);
        z[j + 1] = radius * sin(theta);
    }
    for (int j = 0; j < PER_BLOCK && PER_BLOCK * i + j < n; j++) out[off + PER_BLOCK * i + j] = z[j];
}
