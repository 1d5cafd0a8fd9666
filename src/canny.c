/* canny.c: the two stages of the Canny edge detector that are not filters: non-maximum
 * suppression with the double threshold (for float and double, from canny_impl.h) and
 * hysteresis (the regions of weak and strong pixels that hold a strong one), on the labelling
 * of 8-connected regions that fastconv.dask also uses across chunks. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fastconv.h"
#include "template.h"

/* Below this many pixels the suppression runs on one thread: fork/join would cost more. */
#define CANNY_PARALLEL_MIN ((int64_t)1 << 16)

#define REAL float
#define TYPE_SUFFIX f32
#include "canny_impl.h"
#include "template_end.h"

#define REAL double
#define TYPE_SUFFIX f64
#include "canny_impl.h"
#include "template_end.h"
/* Flood-fills the 8-connected region of nonzero cls pixels around seed in one H x W plane
 * with label (labels read 0 where not yet filled); stack holds up to H * W pixels. */
static void fill_region(int32_t *labels, const uint8_t *cls, int64_t seed, int32_t label,
                        int64_t H, int64_t W, int64_t *stack)
{
    int64_t top = 0;
    labels[seed] = label;
    stack[top++] = seed;
    while (top > 0) {
        const int64_t p = stack[--top];
        const int64_t i = p / W, j = p % W;
        for (int64_t ii = i - 1; ii <= i + 1; ii++) {
            for (int64_t jj = j - 1; jj <= j + 1; jj++) {
                if (ii < 0 || ii >= H || jj < 0 || jj >= W) {
                    continue;
                }
                const int64_t q = ii * W + jj;
                if (cls[q] != 0 && labels[q] == 0) {
                    labels[q] = label;
                    stack[top++] = q;
                }
            }
        }
    }
}

fc_status fc_label_regions(int32_t *labels, const uint8_t *classes, int64_t N, int64_t H,
                           int64_t W, int64_t *count)
{
    *count = 0;
    if (N < 0 || H < 0 || W < 0 || (H > 0 && W > INT64_MAX / H)) {
        return FC_ERR_INVALID;
    }
    const int64_t plane = H * W;
    if (N == 0 || plane == 0) {
        return FC_OK;
    }
    /* Labels count on across planes, so all of them must fit an int32. */
    if (N > INT32_MAX / plane) {
        return FC_ERR_INVALID;
    }
    /* Every pixel is pushed at most once, so a plane-sized stack never overflows. */
    int64_t *stack = malloc((size_t)plane * sizeof(*stack));
    if (stack == NULL) {
        return FC_ERR_NOMEM;
    }
    memset(labels, 0, (size_t)(N * plane) * sizeof(*labels));
    int32_t next = 0;
    for (int64_t n = 0; n < N; n++) {
        const uint8_t *cls = classes + n * plane;
        int32_t *lab = labels + n * plane;
        for (int64_t p = 0; p < plane; p++) {
            if (cls[p] != 0 && lab[p] == 0) {
                fill_region(lab, cls, p, ++next, H, W, stack);
            }
        }
    }
    free(stack);
    *count = next;
    return FC_OK;
}

fc_status fc_canny_hysteresis(uint8_t *edges, const uint8_t *classes, int64_t N, int64_t H,
                              int64_t W)
{
    /* edges (N, H, W) in {0, 1} from classes (N, H, W) in {0 none, 1 weak, 2 strong}: the
     * regions of weak and strong pixels that hold a strong one. */
    if (N < 0 || H < 0 || W < 0 || (H > 0 && W > INT64_MAX / H)) {
        return FC_ERR_INVALID;
    }
    const int64_t plane = H * W;
    if (N == 0 || plane == 0) {
        return FC_OK;
    }
    /* One plane at a time keeps the labels within an int32 for any number of planes. */
    int32_t *labels = malloc((size_t)plane * sizeof(*labels));
    if (labels == NULL) {
        return FC_ERR_NOMEM;
    }
    fc_status st = FC_OK;
    for (int64_t n = 0; n < N && st == FC_OK; n++) {
        int64_t count = 0;
        st = fc_label_regions(labels, classes + n * plane, 1, H, W, &count);
        uint8_t *strong = st == FC_OK ? calloc((size_t)count + 1, 1) : NULL;
        if (st == FC_OK && strong == NULL) {
            st = FC_ERR_NOMEM;
        }
        if (st != FC_OK) {
            break;
        }
        for (int64_t p = 0; p < plane; p++) {
            if (classes[n * plane + p] == 2) {
                strong[labels[p]] = 1;
            }
        }
        for (int64_t p = 0; p < plane; p++) {
            edges[n * plane + p] = strong[labels[p]];
        }
        free(strong);
    }
    free(labels);
    return st;
}
