/*
 * tickline-cping: the C reference for `tickline bench ping`.  Same Aeron
 * client, same driver, same message sizes as the Python benchmark, no Python.
 *
 *   tickline-cping ping DIR PING_CHANNEL PONG_CHANNEL PING_STREAM PONG_STREAM LENGTH COUNT WARMUP OUTFILE
 *   tickline-cping pong DIR PING_CHANNEL PONG_CHANNEL PING_STREAM PONG_STREAM COUNT_TOTAL
 *   tickline-cping tput-pub DIR CHANNEL STREAM LENGTH COUNT
 *   tickline-cping tput-sub DIR CHANNEL STREAM COUNT
 *
 * For UDP channels ping and pong each embed a media driver of their own in
 * DIR, run in invoker mode from the same busy-spin loop as the client (on a
 * two-core machine a driver thread beside two spinning processes would only
 * get scheduler slices); for IPC they use the running driver in DIR.
 *
 * ping writes COUNT round-trip times (int64 ns, native order) to OUTFILE;
 * tput-sub prints "received=N elapsed_ns=T" from first to last message.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aeronc.h"
#include "aeronmd.h"

static aeron_driver_t *g_driver = NULL;
static aeron_t *g_client = NULL;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void fail(const char *what)
{
    fprintf(stderr, "tickline-cping: %s failed: error=%s\n", what, aeron_errmsg());
    exit(1);
}

static void start_embedded_driver(const char *dir)
{
    aeron_driver_context_t *dctx = NULL;
    if (aeron_driver_context_init(&dctx) < 0) fail("driver context init");
    aeron_driver_context_set_dir(dctx, dir);
    aeron_driver_context_set_threading_mode(dctx, AERON_THREADING_MODE_INVOKER);
    aeron_driver_context_set_dir_delete_on_shutdown(dctx, true);
    aeron_driver_context_set_term_buffer_sparse_file(dctx, true);
    if (aeron_driver_init(&g_driver, dctx) < 0) fail("driver init");
    if (aeron_driver_start(g_driver, true) < 0) fail("driver start");
}

/* One turn of the duty cycle for whatever runs in invoker mode here. */
static inline void duty(void)
{
    if (g_driver != NULL)
    {
        aeron_driver_main_do_work(g_driver);
        aeron_main_do_work(g_client);
    }
}

static aeron_t *connect_client(aeron_context_t **ctx, const char *dir, bool embedded)
{
    aeron_t *client = NULL;
    if (embedded) start_embedded_driver(dir);
    if (aeron_context_init(ctx) < 0) fail("context init");
    aeron_context_set_dir(*ctx, dir);
    aeron_context_set_pre_touch_mapped_memory(*ctx, true);
    aeron_context_set_use_conductor_agent_invoker(*ctx, embedded);
    if (aeron_init(&client, *ctx) < 0) fail("client init");
    if (aeron_start(client) < 0) fail("client start");
    g_client = client;
    return client;
}

static void disconnect_client(aeron_t *client, aeron_context_t *ctx)
{
    aeron_close(client);
    aeron_context_close(ctx);
    if (g_driver != NULL) aeron_driver_close(g_driver);
}

static aeron_publication_t *add_pub(aeron_t *client, const char *channel, int32_t stream)
{
    aeron_async_add_publication_t *async = NULL;
    aeron_publication_t *pub = NULL;
    if (aeron_async_add_publication(&async, client, channel, stream) < 0) fail("add publication");
    int rc;
    while ((rc = aeron_async_add_publication_poll(&pub, async)) == 0) { duty(); }
    if (rc < 0) fail("add publication poll");
    return pub;
}

static aeron_subscription_t *add_sub(aeron_t *client, const char *channel, int32_t stream)
{
    aeron_async_add_subscription_t *async = NULL;
    aeron_subscription_t *sub = NULL;
    if (aeron_async_add_subscription(&async, client, channel, stream, NULL, NULL, NULL, NULL) < 0) fail("add subscription");
    int rc;
    while ((rc = aeron_async_add_subscription_poll(&sub, async)) == 0) { duty(); }
    if (rc < 0) fail("add subscription poll");
    return sub;
}

static void offer_spin(aeron_publication_t *pub, const uint8_t *buf, size_t len)
{
    int64_t r;
    while ((r = aeron_publication_offer(pub, buf, len, NULL, NULL)) < 0)
    {
        duty();
        if (r == AERON_PUBLICATION_CLOSED || r == AERON_PUBLICATION_ERROR || r == AERON_PUBLICATION_MAX_POSITION_EXCEEDED)
        {
            fail("offer");
        }
    }
}

typedef struct
{
    int64_t received;
    int64_t rtt;
    aeron_publication_t *pub;
    int64_t first_ns;
    int64_t last_ns;
}
state_t;

static void on_pong(void *clientd, const uint8_t *buffer, size_t length, aeron_header_t *header)
{
    state_t *s = (state_t *)clientd;
    int64_t sent;
    memcpy(&sent, buffer, sizeof(sent));
    s->rtt = now_ns() - sent;
    s->received++;
}

static void on_ping(void *clientd, const uint8_t *buffer, size_t length, aeron_header_t *header)
{
    state_t *s = (state_t *)clientd;
    offer_spin(s->pub, buffer, length);
    s->received++;
}

static void on_count(void *clientd, const uint8_t *buffer, size_t length, aeron_header_t *header)
{
    state_t *s = (state_t *)clientd;
    if (s->received == 0) s->first_ns = now_ns();
    s->received++;
}

int main(int argc, char **argv)
{
    if (argc < 2) { fprintf(stderr, "usage: see the comment at the top of cping.c\n"); return 2; }
    const char *mode = argv[1];
    aeron_context_t *ctx = NULL;
    state_t s = {0};

    if (strcmp(mode, "ping") == 0 && argc == 11)
    {
        bool embedded = strncmp(argv[3], "aeron:udp", 9) == 0;
        aeron_t *client = connect_client(&ctx, argv[2], embedded);
        size_t length = (size_t)atol(argv[7]);
        int64_t count = atoll(argv[8]), warmup = atoll(argv[9]);
        aeron_publication_t *pub = add_pub(client, argv[3], atoi(argv[5]));
        aeron_subscription_t *sub = add_sub(client, argv[4], atoi(argv[6]));
        while (!aeron_publication_is_connected(pub) || !aeron_subscription_is_connected(sub)) { duty(); }
        uint8_t *msg = calloc(1, length < 8 ? 8 : length);
        int64_t *samples = malloc(sizeof(int64_t) * (size_t)count);
        for (int64_t i = 0; i < warmup + count; i++)
        {
            int64_t t = now_ns();
            memcpy(msg, &t, sizeof(t));
            offer_spin(pub, msg, length);
            int64_t want = s.received + 1;
            while (s.received < want)
            {
                if (aeron_subscription_poll(sub, on_pong, &s, 1) == 0) duty();
            }
            if (i >= warmup) samples[i - warmup] = s.rtt;
        }
        FILE *f = fopen(argv[10], "wb");
        if (f == NULL || fwrite(samples, sizeof(int64_t), (size_t)count, f) != (size_t)count) { perror("write samples"); return 1; }
        fclose(f);
        disconnect_client(client, ctx);
        return 0;
    }
    if (strcmp(mode, "pong") == 0 && argc == 8)
    {
        bool embedded = strncmp(argv[3], "aeron:udp", 9) == 0;
        aeron_t *client = connect_client(&ctx, argv[2], embedded);
        int64_t total = atoll(argv[7]);
        aeron_subscription_t *sub = add_sub(client, argv[3], atoi(argv[5]));
        s.pub = add_pub(client, argv[4], atoi(argv[6]));
        while (s.received < total)
        {
            if (aeron_subscription_poll(sub, on_ping, &s, 10) == 0) duty();
        }
        /* Let the last pong leave before the driver goes. */
        for (int i = 0; i < 100000; i++) duty();
        disconnect_client(client, ctx);
        return 0;
    }
    if (strcmp(mode, "tput-pub") == 0 && argc == 7)
    {
        aeron_t *client = connect_client(&ctx, argv[2], false);
        size_t length = (size_t)atol(argv[5]);
        int64_t count = atoll(argv[6]);
        aeron_publication_t *pub = add_pub(client, argv[3], atoi(argv[4]));
        while (!aeron_publication_is_connected(pub)) {}
        uint8_t *msg = calloc(1, length);
        for (int64_t i = 0; i < count; i++) { offer_spin(pub, msg, length); }
        disconnect_client(client, ctx);
        return 0;
    }
    if (strcmp(mode, "tput-sub") == 0 && argc == 6)
    {
        aeron_t *client = connect_client(&ctx, argv[2], false);
        int64_t count = atoll(argv[5]);
        aeron_subscription_t *sub = add_sub(client, argv[3], atoi(argv[4]));
        printf("ready\n");
        fflush(stdout);
        /* The clock is read at the first message and when the count is
         * reached, not per message: the subscriber must not be the bottleneck. */
        while (s.received < count) { aeron_subscription_poll(sub, on_count, &s, 4096); }
        s.last_ns = now_ns();
        printf("received=%" PRId64 " elapsed_ns=%" PRId64 "\n", s.received, s.last_ns - s.first_ns);
        fflush(stdout);
        disconnect_client(client, ctx);
        return 0;
    }
    fprintf(stderr, "tickline-cping: bad arguments: mode=%s argc=%d (see cping.c)\n", mode, argc);
    return 2;
}
