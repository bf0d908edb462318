/* test_drift.c — data/drift.c's statistics against references written elsewhere: the two-sample
 * Kolmogorov-Smirnov D and asymptotic p-value equal R's ks.test(x, y, exact = FALSE) (Rscript, make deps)
 * on samples with and without ties (p to 1e-6: R sums its series to a tolerance of 1e-6); the
 * Jensen-Shannon divergence equals a hand computation, is 0 for equal distributions, 1 for disjoint ones
 * and symmetric. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "testutil.h"
#include "../../data/drift.h"

/* ks.test of x [nx] and y [ny] in R: D and p into *D, *p. Returns 0 or -1. */
static int r_ks(const double *x, int nx, const double *y, int ny, double *D, double *p) {
    char *cmd = slim_malloc(64 * (size_t)(nx + ny) + 512);
    strcpy(cmd, "Rscript -e 'x <- c(");
    for (int i = 0; i < nx; i++) sprintf(cmd + strlen(cmd), "%s%.17g", i ? "," : "", x[i]);
    strcat(cmd, "); y <- c(");
    for (int i = 0; i < ny; i++) sprintf(cmd + strlen(cmd), "%s%.17g", i ? "," : "", y[i]);
    strcat(cmd, "); r <- suppressWarnings(ks.test(x, y, exact = FALSE)); cat(sprintf(\"%.15g %.15g\\n\", r$statistic, "
                "r$p.value))' 2>&1");
    FILE *f = popen(cmd, "r");
    int ok = f && fscanf(f, "%lf %lf", D, p) == 2;
    if (f && pclose(f) != 0) ok = 0;
    free(cmd);
    return ok ? 0 : -1;
}

static void test_ks(void) {
    slim_rng rng;
    slim_rng_seed(&rng, 2);
    for (int c = 0; c < 4; c++) {
        const int nx = 40 + 30 * c, ny = 55 + 10 * c;
        double *x = slim_malloc(sizeof(double) * nx), *y = slim_malloc(sizeof(double) * ny), D, p, rD, rp;
        for (int i = 0; i < nx; i++) x[i] = c % 2 ? floor(10 * slim_rng_uniform(&rng)) : slim_rng_normal(&rng);
        for (int i = 0; i < ny; i++)
            y[i] = c % 2 ? floor(10 * slim_rng_uniform(&rng) + c) : slim_rng_normal(&rng) + 0.2 * c;
        int rc = r_ks(x, nx, y, ny, &rD, &rp);
        drift_ks(x, nx, y, ny, &D, &p);
        CHECK(rc == 0, "Rscript ks.test (r-base-core: make deps) case %d", c);
        CHECK(fabs(D - rD) < 1e-12 && fabs(p - rp) < 1e-6 * (1 + rp), "case %d%s: D %.15g p %.15g, R: D %.15g p %.15g", c,
              c % 2 ? " (ties)" : "", D, p, rD, rp);
        printf("drift: KS %d vs %d%s: D %.4f p %.4g (R: %.4f %.4g)\n", nx, ny, c % 2 ? " with ties" : "", D, p, rD, rp);
        free(x);
        free(y);
    }
}

static void test_js(void) {
    const double a[3] = {1, 1, 2}, b[3] = {2, 2, 0}, z[3] = {0, 0, 0};
    /* p = (.25 .25 .5), q = (.5 .5 0), m = (.375 .375 .25) */
    double want = 0.5 * (0.25 * log2(0.25 / 0.375) * 2 + 0.5 * log2(0.5 / 0.25)) + 0.5 * (0.5 * log2(0.5 / 0.375) * 2);
    CHECK(fabs(drift_js(a, b, 3) - want) < 1e-12, "JS %.15g, by hand %.15g", drift_js(a, b, 3), want);
    CHECK(fabs(drift_js(b, a, 3) - want) < 1e-12, "JS is not symmetric");
    CHECK(drift_js(a, a, 3) == 0, "JS of equal distributions %g", drift_js(a, a, 3));
    const double u[2] = {1, 0}, v[2] = {0, 3};
    CHECK(fabs(drift_js(u, v, 2) - 1) < 1e-12, "JS of disjoint distributions %g", drift_js(u, v, 2));
    CHECK(drift_js(a, z, 3) == 0, "an empty distribution gives %g", drift_js(a, z, 3));
}

int main(void) {
    test_ks();
    test_js();
    return tu_finish("drift");
}
