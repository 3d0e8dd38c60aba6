/* A Lambda executable driven by tests/c_api.rs (which plays the plugin).
 *
 * argv[1]: "before" (calls without ggcore), "block" (gg_runtime_start
 * blocking) or "async" (GG_RT_OPT_ASYNC and a publishing thread).
 *
 * Each invocation's event is a command: its first word says what to do and
 * the response reports each SDK call as "err=E status=S data=D". */

#define _DEFAULT_SOURCE

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "greengrasssdk.h"

static char event[4096];
static size_t event_len;

/* Reads the whole event in small pieces (to exercise repeated reads). */
static void read_event(void) {
    size_t amount = 0;
    event_len = 0;
    do {
        gg_error e = gg_lambda_handler_read(event + event_len, 3, &amount);
        if (e != GGE_SUCCESS) {
            gg_log(GG_LOG_ERROR, "read failed %d", e);
            return;
        }
        event_len += amount;
    } while (amount > 0 && event_len + 3 <= sizeof event);
    event[event_len] = 0;
}

/* Appends "err=E status=S data=D;" for a finished call to the response. */
static void report(gg_request req, gg_error err, gg_request_result *res) {
    char data[1024];
    char line[1200];
    size_t total = 0, amount = 0;
    do {
        if (gg_request_read(req, data + total, 7, &amount) != GGE_SUCCESS) {
            break;
        }
        total += amount;
    } while (amount > 0 && total + 7 < sizeof data);
    sprintf(line, "err=%d status=%d data=", (int)err, (int)res->request_status);
    gg_lambda_handler_write_response(line, strlen(line));
    gg_lambda_handler_write_response(data, total);
    gg_lambda_handler_write_response(";", 1);
}

static const char *arg(void) {
    const char *space = strchr(event, ' ');
    return space ? space + 1 : "";
}

static int starts(const char *word) {
    return strncmp(event, word, strlen(word)) == 0;
}

#define CHECK(call, want)                                                   \
    do {                                                                    \
        gg_error got_ = (call);                                             \
        if (got_ != (want)) {                                               \
            char msg_[300];                                                 \
            sprintf(msg_, "FAILED %s: %d;", #call, (int)got_);              \
            gg_lambda_handler_write_response(msg_, strlen(msg_));           \
        }                                                                   \
    } while (0)

/* Every required pointer NULL, and values the library must refuse. */
static void bad_arguments(void) {
    gg_request req = NULL;
    gg_request_result res;
    gg_publish_options opts = NULL;
    gg_invoke_options inv;
    size_t amount;
    char buf[4];

    CHECK(gg_request_init(NULL), GGE_INVALID_PARAMETER);
    CHECK(gg_request_close(NULL), GGE_INVALID_PARAMETER);
    CHECK(gg_request_reuse(NULL), GGE_INVALID_PARAMETER);
    CHECK(gg_request_init(&req), GGE_SUCCESS);
    CHECK(gg_request_read(NULL, buf, 4, &amount), GGE_INVALID_PARAMETER);
    CHECK(gg_request_read(req, NULL, 4, &amount), GGE_INVALID_PARAMETER);
    CHECK(gg_request_read(req, buf, 4, NULL), GGE_INVALID_PARAMETER);
    CHECK(gg_request_read(req, NULL, 0, &amount), GGE_SUCCESS);
    CHECK(gg_publish(NULL, "t", "x", 1, &res), GGE_INVALID_PARAMETER);
    CHECK(gg_publish(req, NULL, "x", 1, &res), GGE_INVALID_PARAMETER);
    CHECK(gg_publish(req, "t", NULL, 1, &res), GGE_INVALID_PARAMETER);
    CHECK(gg_publish(req, "t", "x", 1, NULL), GGE_INVALID_PARAMETER);
    CHECK(gg_publish(req, "\xff\xfe", "x", 1, &res), GGE_INVALID_PARAMETER);
    CHECK(gg_publish_options_init(NULL), GGE_INVALID_PARAMETER);
    CHECK(gg_publish_options_free(NULL), GGE_INVALID_PARAMETER);
    CHECK(gg_publish_options_set_queue_full_policy(NULL, GG_QUEUE_FULL_POLICY_BEST_EFFORT), GGE_INVALID_PARAMETER);
    CHECK(gg_publish_options_init(&opts), GGE_SUCCESS);
    CHECK(gg_publish_options_set_queue_full_policy(opts, GG_QUEUE_FULL_POLICY_RESERVED_MAX), GGE_INVALID_PARAMETER);
    CHECK(gg_publish_options_free(opts), GGE_SUCCESS);
    CHECK(gg_invoke(req, NULL, &res), GGE_INVALID_PARAMETER);
    memset(&inv, 0, sizeof inv);
    inv.type = GG_INVOKE_EVENT;
    CHECK(gg_invoke(req, &inv, &res), GGE_INVALID_PARAMETER);
    inv.function_arn = "arn:aws:lambda:us-east-1:1:function:f";
    inv.type = GG_INVOKE_RESERVED_MAX;
    CHECK(gg_invoke(req, &inv, &res), GGE_INVALID_PARAMETER);
    inv.type = GG_INVOKE_EVENT;
    inv.payload_size = 2;
    CHECK(gg_invoke(req, &inv, &res), GGE_INVALID_PARAMETER);
    CHECK(gg_get_thing_shadow(req, NULL, &res), GGE_INVALID_PARAMETER);
    CHECK(gg_update_thing_shadow(req, "thing", NULL, &res), GGE_INVALID_PARAMETER);
    CHECK(gg_delete_thing_shadow(req, "thing", NULL), GGE_INVALID_PARAMETER);
    CHECK(gg_get_secret_value(req, NULL, NULL, NULL, &res), GGE_INVALID_PARAMETER);
    CHECK(gg_get_secret_value(NULL, "s", NULL, NULL, &res), GGE_INVALID_PARAMETER);
    CHECK(gg_log(GG_LOG_RESERVED_NOTSET, "x"), GGE_INVALID_PARAMETER);
    CHECK(gg_log(GG_LOG_RESERVED_MAX, "x"), GGE_INVALID_PARAMETER);
    CHECK(gg_log(GG_LOG_INFO, NULL), GGE_INVALID_PARAMETER);
    CHECK(gg_lambda_handler_read(NULL, 1, &amount), GGE_INVALID_PARAMETER);
    CHECK(gg_lambda_handler_write_response(NULL, 1), GGE_INVALID_PARAMETER);
    CHECK(gg_lambda_handler_write_error(NULL), GGE_INVALID_PARAMETER);
    CHECK(gg_runtime_start(NULL, 0), GGE_INVALID_PARAMETER);
    CHECK(gg_global_init(1), GGE_INVALID_PARAMETER);
    CHECK(gg_request_close(req), GGE_SUCCESS);
    gg_lambda_handler_write_response("checked", 7);
}

static void handler(const gg_lambda_context *cxt) {
    gg_request req;
    gg_request_result res;
    gg_error err;

    read_event();
    gg_request_init(&req);
    if (starts("echo")) {
        gg_lambda_handler_write_response(event, event_len);
        gg_lambda_handler_write_response("|", 1);
        gg_lambda_handler_write_response(cxt->function_arn, strlen(cxt->function_arn));
        gg_lambda_handler_write_response("|", 1);
        gg_lambda_handler_write_response(cxt->client_context, strlen(cxt->client_context));
    } else if (starts("fail")) {
        gg_lambda_handler_write_response("ignored", 7);
        gg_lambda_handler_write_error(arg());
    } else if (starts("publish_all")) {
        gg_publish_options opts;
        gg_publish_options_init(&opts);
        gg_publish_options_set_queue_full_policy(opts, GG_QUEUE_FULL_POLICY_ALL_OR_ERROR);
        err = gg_publish_with_options(req, arg(), "p\0q", 3, opts, &res);
        gg_publish_options_free(opts);
        report(req, err, &res);
    } else if (starts("publish_best")) {
        gg_publish_options opts;
        gg_publish_options_init(&opts);
        err = gg_publish_with_options(req, arg(), "", 0, opts, &res);
        gg_publish_options_free(opts);
        report(req, err, &res);
    } else if (starts("publish")) {
        err = gg_publish(req, arg(), "a\0b", 3, &res);
        report(req, err, &res);
    } else if (starts("invoke")) {
        gg_invoke_options inv;
        inv.function_arn = arg();
        inv.customer_context = "eyJjdXN0b20iOnt9fQ==";
        inv.qualifier = NULL;
        inv.type = GG_INVOKE_REQUEST_RESPONSE;
        inv.payload = "x\0y";
        inv.payload_size = 3;
        err = gg_invoke(req, &inv, &res);
        report(req, err, &res);
    } else if (starts("event_invoke")) {
        gg_invoke_options inv;
        inv.function_arn = arg();
        inv.customer_context = NULL;
        inv.qualifier = "7";
        inv.type = GG_INVOKE_EVENT;
        inv.payload = NULL;
        inv.payload_size = 0;
        err = gg_invoke(req, &inv, &res);
        report(req, err, &res);
    } else if (starts("shadow")) {
        err = gg_get_thing_shadow(req, arg(), &res);
        report(req, err, &res);
        gg_request_reuse(req);
        err = gg_update_thing_shadow(req, arg(), "{\"state\":{}}", &res);
        report(req, err, &res);
        gg_request_reuse(req);
        err = gg_delete_thing_shadow(req, arg(), &res);
        report(req, err, &res);
    } else if (starts("secret")) {
        err = gg_get_secret_value(req, arg(), NULL, "AWSCURRENT", &res);
        report(req, err, &res);
    } else if (starts("log")) {
        char long_line[3000];
        memset(long_line, 'L', sizeof long_line - 1);
        long_line[sizeof long_line - 1] = 0;
        gg_log(GG_LOG_DEBUG, "debug %d", 1);
        gg_log(GG_LOG_INFO, "info %s", "two");
        gg_log(GG_LOG_WARN, "warn %c", '3');
        gg_log(GG_LOG_ERROR, "error %u", 4u);
        gg_log(GG_LOG_FATAL, "fatal %x", 0x5f);
        gg_log(GG_LOG_INFO, "%s!", long_line);
        gg_lambda_handler_write_response("logged", 6);
    } else if (starts("printf")) {
        printf("printed by the handler\n");
        gg_lambda_handler_write_response("printed", 7);
    } else if (starts("sleep")) {
        usleep(300 * 1000);
        gg_lambda_handler_write_response("slept", 5);
    } else if (starts("badargs")) {
        bad_arguments();
    }
    gg_request_close(req);
}

/* Calls made without ggcore (no GGCORE_SDK_FDS); prints each result. */
static int before(void) {
    gg_request req;
    gg_request_result res;
    size_t amount;
    char buf[4];
    gg_request_init(&req);
    printf("publish=%d ", (int)gg_publish(req, "t", "x", 1, &res));
    printf("shadow=%d ", (int)gg_get_thing_shadow(req, "thing", &res));
    printf("start=%d ", (int)gg_runtime_start(handler, 0));
    printf("read=%d ", (int)gg_lambda_handler_read(buf, 4, &amount));
    printf("write=%d ", (int)gg_lambda_handler_write_response("x", 1));
    printf("log=%d ", (int)gg_log(GG_LOG_WARN, "logged %s", "early"));
    printf("init1=%d ", (int)gg_global_init(1));
    printf("init=%d\n", (int)gg_global_init(0));
    gg_request_close(req);
    return 0;
}

static void *publisher(void *unused) {
    gg_request req;
    gg_request_result res;
    int i;
    (void)unused;
    gg_request_init(&req);
    for (i = 0; i < 3; i++) {
        char payload[32];
        gg_error err;
        sprintf(payload, "tick %d", i);
        err = gg_publish(req, "t/async", payload, strlen(payload), &res);
        gg_log(GG_LOG_INFO, "tick %d err=%d status=%d", i, (int)err, (int)res.request_status);
    }
    gg_request_close(req);
    return NULL;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "block";
    gg_error err;

    if (strcmp(mode, "before") == 0) {
        return before();
    }
    err = gg_global_init(0);
    if (err != GGE_SUCCESS) {
        gg_log(GG_LOG_ERROR, "gg_global_init failed %d", (int)err);
        return 10;
    }
    /* Idempotent; and no invocation is current yet. */
    gg_log(GG_LOG_INFO, "init again=%d write=%d", (int)gg_global_init(0), (int)gg_lambda_handler_write_response("x", 1));
    if (strcmp(mode, "async") == 0) {
        pthread_t thread;
        err = gg_runtime_start(handler, GG_RT_OPT_ASYNC);
        gg_log(GG_LOG_INFO, "async start=%d again=%d", (int)err, (int)gg_runtime_start(handler, 0));
        pthread_create(&thread, NULL, publisher, NULL);
        pthread_join(thread, NULL);
        for (;;) {
            pause();
        }
    }
    err = gg_runtime_start(handler, 2);
    gg_log(GG_LOG_INFO, "unknown option=%d", (int)err);
    err = gg_runtime_start(handler, 0);
    printf("runtime ended %d\n", (int)err);
    return (int)err;
}
