/* Operator alerts to a webhook: a background thread POSTs queued alerts as
 * JSON with libcurl, retrying with exponential backoff, so a slow or
 * failing receiver never stalls the main loop. */
#include "alerts.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "saga_alloc.h"
#include "saga_clock.h"
#include "saga_error.h"
#include "saga_json.h"
#include "saga_log.h"

#define MAX_ATTEMPTS 6
#define FIRST_BACKOFF_MS 500

struct saga_alerter {
    char *url;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    char **queue;            /* FIFO of JSON texts */
    size_t head, count, cap;
    bool stopping;
    unsigned long long sent, failed, dropped;
};

static int post_once(const char *url, const char *body, long *status, char *err, size_t errlen) {
    CURL *c = curl_easy_init();
    if (!c) {
        snprintf(err, errlen, "curl_easy_init failed");
        return -1;
    }
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 5L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "sagad-alerts/0.1");
    CURLcode rc = curl_easy_perform(c);
    *status = 0;
    if (rc == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    else snprintf(err, errlen, "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return rc == CURLE_OK ? 0 : -1;
}

/* Delivers one alert: 2xx done; 4xx (but 408/429) is final; others retry. */
static bool deliver(saga_alerter_t *a, const char *body) {
    int64_t backoff = FIRST_BACKOFF_MS;
    for (int attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
        long status;
        char err[256] = "";
        if (post_once(a->url, body, &status, err, sizeof err) == 0) {
            if (status >= 200 && status < 300) return true;
            snprintf(err, sizeof err, "HTTP %ld", status);
            if (status >= 400 && status < 500 && status != 408 && status != 429) {
                LOG_ERROR("alerts", "webhook refused an alert (%s); not retried", err);
                return false;
            }
        }
        LOG_WARN("alerts", "webhook attempt %d of %d failed: %s", attempt, MAX_ATTEMPTS, err);
        if (attempt == MAX_ATTEMPTS) break;
        pthread_mutex_lock(&a->lock);
        if (!a->stopping) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += backoff / 1000;
            until.tv_nsec += (backoff % 1000) * 1000000;
            if (until.tv_nsec >= 1000000000) { until.tv_sec++; until.tv_nsec -= 1000000000; }
            pthread_cond_timedwait(&a->wake, &a->lock, &until);
        }
        bool stopping = a->stopping;
        pthread_mutex_unlock(&a->lock);
        if (stopping && attempt >= 2) break; /* shutting down: give up sooner */
        backoff *= 2;
    }
    return false;
}

static void *run(void *arg) {
    saga_alerter_t *a = arg;
    for (;;) {
        pthread_mutex_lock(&a->lock);
        while (a->count == 0 && !a->stopping) pthread_cond_wait(&a->wake, &a->lock);
        if (a->count == 0) {
            pthread_mutex_unlock(&a->lock);
            return NULL;
        }
        char *body = a->queue[a->head];
        a->head = (a->head + 1) % a->cap;
        a->count--;
        pthread_mutex_unlock(&a->lock);
        bool ok = deliver(a, body);
        pthread_mutex_lock(&a->lock);
        if (ok) a->sent++;
        else a->failed++;
        pthread_mutex_unlock(&a->lock);
        if (!ok) LOG_ERROR("alerts", "alert not delivered: %s", body);
        saga_free(body);
    }
}

saga_alerter_t *saga_alerter_start(const char *url, size_t max_queue, char *err, size_t errlen) {
    saga_alerter_t *a = saga_calloc(1, sizeof *a);
    if (!a || !(a->url = saga_strdup(url)) || !(a->queue = saga_calloc(max_queue, sizeof *a->queue))) {
        if (a) { saga_free(a->url); saga_free(a); }
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    a->cap = max_queue;
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->wake, NULL);
    if (pthread_create(&a->thread, NULL, run, a) != 0) {
        snprintf(err, errlen, "cannot start the alert thread");
        pthread_mutex_destroy(&a->lock);
        pthread_cond_destroy(&a->wake);
        saga_free(a->queue);
        saga_free(a->url);
        saga_free(a);
        return NULL;
    }
    return a;
}

void saga_alert(saga_alerter_t *a, const char *kind, json_t *fields) {
    if (!a) {
        json_decref(fields);
        return;
    }
    char at[40];
    json_t *doc = fields ? fields : json_object();
    json_object_set_new(doc, "type", json_string("saga.alert"));
    json_object_set_new(doc, "alert", json_string(kind));
    json_object_set_new(doc, "at", json_string(saga_format_time(saga_now_ms(), at, sizeof at)));
    char *body = saga_json_dump(doc);
    json_decref(doc);
    if (!body) return;
    pthread_mutex_lock(&a->lock);
    if (a->count == a->cap) {
        a->dropped++;
        pthread_mutex_unlock(&a->lock);
        LOG_ERROR("alerts", "alert queue full (%zu): dropped %s", a->cap, body);
        saga_free(body);
        return;
    }
    a->queue[(a->head + a->count) % a->cap] = body;
    a->count++;
    pthread_cond_signal(&a->wake);
    pthread_mutex_unlock(&a->lock);
}

void saga_alerter_stop(saga_alerter_t **pa) {
    saga_alerter_t *a = *pa;
    if (!a) return;
    pthread_mutex_lock(&a->lock);
    a->stopping = true;
    pthread_cond_broadcast(&a->wake);
    pthread_mutex_unlock(&a->lock);
    pthread_join(a->thread, NULL);
    for (size_t i = 0; i < a->count; i++) saga_free(a->queue[(a->head + i) % a->cap]);
    LOG_INFO("alerts", "alerts sent=%llu failed=%llu dropped=%llu", a->sent, a->failed, a->dropped);
    pthread_mutex_destroy(&a->lock);
    pthread_cond_destroy(&a->wake);
    saga_free(a->queue);
    saga_free(a->url);
    saga_free(a);
    *pa = NULL;
}
