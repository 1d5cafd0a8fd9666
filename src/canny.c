/* canny.c: the two stages of the Canny edge detector that are not filters: non-maximum
 * suppression with the double threshold (for float and double, from canny_impl.h) and
 * hysteresis (a flood fill from the strong pixels through the weak ones). */
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
fc_status fc_canny_hysteresis(uint8_t *edges, const uint8_t *classes, int64_t N, int64_t H,
                              int64_t W)
{
    /* edges (N, H, W) in {0, 1} from classes (N, H, W) in {0 none, 1 weak, 2 strong} */
    if (N < 0 || H < 0 || W < 0) {
        return FC_ERR_INVALID;
    }
    const int64_t plane = H * W;
    if (N == 0 || plane == 0) {
        return FC_OK;
    }
    /* Every pixel is pushed at most once, so a plane-sized stack never overflows. */
    int64_t *stack = malloc((size_t)plane * sizeof(*stack));
    if (stack == NULL) {
        return FC_ERR_NOMEM;
    }
    memset(edges, 0, (size_t)(N * plane));
    for (int64_t n = 0; n < N; n++) {
        const uint8_t *cls = classes + n * plane;
        uint8_t *out = edges + n * plane;
        for (int64_t seed = 0; seed < plane; seed++) {
            if (cls[seed] != 2 || out[seed]) {
                continue;
            }
            int64_t top = 0;
            out[seed] = 1;
            stack[top++] = seed;
            while (top > 0) {
                const int64_t p = stack[--top];
                const int64_t i = p / W, j = p % W;
                for (int64_t di = -1; di <= 1; di++) {
                    for (int64_t dj = -1; dj <= 1; dj++) {
                        const int64_t ii = i + di, jj = j + dj;
                        if (ii < 0 || ii >= H || jj < 0 || jj >= W) {
                            continue;
                        }
                        const int64_t q = ii * W + jj;
                        if (cls[q] != 0 && !out[q]) {
                            out[q] = 1;
                            stack[top++] = q;
                        }
                    }
                }
            }
        }
    }
    free(stack);
    return FC_OK;
}
