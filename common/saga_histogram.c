/* Fixed-bucket latency histograms (saga_histogram.h). */
#include "saga_histogram.h"

const double saga_hist_fast_bounds[SAGA_HIST_BUCKETS - 1] = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05,
                                                             0.1,    0.2,   0.5,   1,     2,    5};
const double saga_hist_slow_bounds[SAGA_HIST_BUCKETS - 1] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                             1,     2.5,  10,    60,   600, 3600};

void saga_histogram_add(saga_histogram_t *h, double seconds) {
    int i = 0;
    while (i < SAGA_HIST_BUCKETS - 1 && seconds > h->bounds[i]) i++;
    h->counts[i]++;
    h->sum += seconds;
    h->count++;
}

json_t *saga_histogram_json(const saga_histogram_t *h) {
    json_t *buckets = json_array();
    uint64_t cumulative = 0;
    for (int i = 0; buckets && i < SAGA_HIST_BUCKETS; i++) {
        cumulative += h->counts[i];
        json_t *le = i < SAGA_HIST_BUCKETS - 1 ? json_real(h->bounds[i]) : json_string("+Inf");
        json_array_append_new(buckets, json_pack("[o, I]", le, (json_int_t)cumulative));
    }
    return json_pack("{s:o, s:f, s:I}", "buckets", buckets, "sum", h->sum, "count", (json_int_t)h->count);
}

void saga_histogram_write(FILE *out, const char *metric, const char *help, const saga_histogram_t *h) {
    fprintf(out, "# HELP %s %s\n# TYPE %s histogram\n", metric, help, metric);
    uint64_t cumulative = 0;
    for (int i = 0; i < SAGA_HIST_BUCKETS; i++) {
        cumulative += h->counts[i];
        if (i < SAGA_HIST_BUCKETS - 1)
            fprintf(out, "%s_bucket{le=\"%g\"} %llu\n", metric, h->bounds[i], (unsigned long long)cumulative);
        else
            fprintf(out, "%s_bucket{le=\"+Inf\"} %llu\n", metric, (unsigned long long)cumulative);
    }
    fprintf(out, "%s_sum %.6f\n%s_count %llu\n", metric, h->sum, metric, (unsigned long long)h->count);
}
