/* canny_impl.h: Canny's non-maximum suppression for one element type (template.h: REAL,
 * FN). Included by canny.c. */

/* Class of the interior pixel p of a plane whose rows are W long: keep its magnitude only
 * if it is at least the magnitude one pixel further along the gradient and one pixel back,
 * each read by linear interpolation between the two pixels the gradient direction falls
 * between. Image axes: gx along columns (right positive), gy along rows (down positive). */
static uint8_t FN(nms_pixel)(const REAL *gx, const REAL *gy, const REAL *mag, int64_t p,
                             int64_t W, REAL low, REAL high)
{
    const REAL m = mag[p];
    if (!(m > 0 && m >= low)) {
        return 0;
    }
    const REAL ax = gx[p] < 0 ? -gx[p] : gx[p];
    const REAL ay = gy[p] < 0 ? -gy[p] : gy[p];
    const int64_t sx = gx[p] < 0 ? -1 : 1;
    const int64_t sy = gy[p] < 0 ? -W : W;
    int64_t near, diag;   /* offsets of the axis neighbour and the diagonal neighbour */
    REAL t;               /* weight of the diagonal neighbour, in [0, 1] */
    if (ax >= ay) {
        near = sx;
        diag = sx + sy;
        t = ay / ax;
    } else {
        near = sy;
        diag = sy + sx;
        t = ax / ay;
    }
    const REAL ahead = (1 - t) * mag[p + near] + t * mag[p + diag];
    const REAL behind = (1 - t) * mag[p - near] + t * mag[p - diag];
    if (!(m >= ahead && m >= behind)) {
        return 0;
    }
    return m >= high ? 2 : 1;
}

fc_status FN(fc_canny_nms)(uint8_t *classes, const REAL *gx, const REAL *gy, const REAL *mag,
                           int64_t N, int64_t H, int64_t W, double low, double high)
{
    /* classes (N, H, W) from the gradients gx, gy and their magnitude mag, all (N, H, W) */
    if (N < 0 || H < 0 || W < 0) {
        return FC_ERR_INVALID;
    }
    const int64_t n_rows = N * H;

#pragma omp parallel for schedule(static) if (n_rows * W > CANNY_PARALLEL_MIN)
    for (int64_t nh = 0; nh < n_rows; nh++) {
        const int64_t i = nh % H;
        uint8_t *out = classes + nh * W;
        const int64_t row = nh * W;
        for (int64_t j = 0; j < W; j++) {
            /* The outermost ring has no neighbour on one side: never an edge. */
            if (i == 0 || i == H - 1 || j == 0 || j == W - 1) {
                out[j] = 0;
            } else {
                out[j] = FN(nms_pixel)(gx, gy, mag, row + j, W, (REAL)low, (REAL)high);
            }
        }
    }
    return FC_OK;
}
