// im2col / col2im for NHWC images, matching wengert/runtime/primitives/neural.py:
// cols[b*OH*OW + oy*OW + ox, (i*KW + j)*C + c] = x[b, oy*SH + i - PT, ox*SW + j - PL, c]
// (zero outside the image), and col2im its transpose (the sum over every tap that read a pixel).
// One work-item per output element; col2im gathers instead of scattering, so it needs no atomics
// and its sums are deterministic. Build option: -DT.

__kernel void im2col(const int B, const int H, const int W, const int C,
                     const int KH, const int KW, const int SH, const int SW, const int PT, const int PL,
                     const int OH, const int OW,
                     __global const T *x, const long x_off, __global T *cols)
{
    const long gid = get_global_id(0);
    const long ncol = (long)KH * KW * C;
    const long total = (long)B * OH * OW * ncol;
    if (gid >= total) return;
    const long row = gid / ncol;
    const int col = (int)(gid - row * ncol);
    const int c = col % C, tap = col / C;
    const int i = tap / KW, j = tap % KW;
    const int ox = (int)(row % OW);
    const long rest = row / OW;
    const int oy = (int)(rest % OH);
    const int b = (int)(rest / OH);
    const int y = oy * SH + i - PT, xx = ox * SW + j - PL;
    cols[gid] = (y >= 0 && y < H && xx >= 0 && xx < W)
        ? x[x_off + (((long)b * H + y) * W + xx) * C + c] : (T)0;
}

// d [B, OH, OW, KH, KW, C] -> gx [B, H, W, C]
__kernel void col2im(const int B, const int H, const int W, const int C,
                     const int KH, const int KW, const int SH, const int SW, const int PT, const int PL,
                     const int OH, const int OW,
                     __global const T *d, const long d_off, __global T *gx)
{
    const long gid = get_global_id(0);
    const long total = (long)B * H * W * C;
    if (gid >= total) return;
    const int c = (int)(gid % C);
    long rest = gid / C;
    const int xx = (int)(rest % W);
    rest /= W;
    const int y = (int)(rest % H);
    const int b = (int)(rest / H);
    T acc = 0;
    for (int i = 0; i < KH; i++) {
        const int yy = y + PT - i;
        if (yy < 0 || yy % SH) continue;
        const int oy = yy / SH;
        if (oy >= OH) continue;
        for (int j = 0; j < KW; j++) {
            const int xj = xx + PL - j;
            if (xj < 0 || xj % SW) continue;
            const int ox = xj / SW;
            if (ox >= OW) continue;
            acc += d[d_off + ((((long)b * OH + oy) * OW + ox) * KH * KW + i * KW + j) * C + c];
        }
    }
    gx[gid] = acc;
}
