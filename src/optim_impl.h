/* optim_impl.h: Adam's and SGD's updates of one parameter for one element type
 * (template.h: REAL, FN; FN(fc_sqrt) of real_math.h). Included by optim.c. */

void FN(fc_adam_update)(REAL *param, REAL *m, REAL *v, const REAL *grad, int64_t n,
                        const FN(fc_adam_scalars) *s)
{
    for (int64_t i = 0; i < n; i++) {
        const REAL g = grad[i];
        const REAL mi = m[i] * s->beta1 + g * s->one_minus_beta1;
        const REAL vi = v[i] * s->beta2 + (g * s->one_minus_beta2) * g;
        m[i] = mi;
        v[i] = vi;
        const REAL m_hat = mi / s->correction1;
        const REAL v_hat = vi / s->correction2;
        param[i] -= (m_hat * s->lr) / (FN(fc_sqrt)(v_hat) + s->eps);
    }
}

/* SGD: with a velocity v (momentum > 0) v <- momentum * v + g (v <- g on the first step,
 * as torch), the step along v or, Nesterov, along g + momentum * v; param -= lr * step.
 * velocity NULL: plain SGD, param -= lr * g. */
void FN(fc_sgd_update)(REAL *param, REAL *velocity, const REAL *grad, int64_t n,
                       REAL momentum, REAL lr, int nesterov, int first)
{
    for (int64_t i = 0; i < n; i++) {
        const REAL g = grad[i];
        REAL step = g;
        if (velocity != NULL) {
            const REAL vi = first ? g : velocity[i] * momentum + g;
            velocity[i] = vi;
            step = nesterov ? g + vi * momentum : vi;
        }
        param[i] -= step * lr;
    }
}
