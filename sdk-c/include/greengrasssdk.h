/*
 * greengrasssdk.h: the Greengrass v1 C Core SDK API, as implemented by ggcore.
 *
 * Programs built against this header (or against AWS's, which declares the
 * same types and functions) link with libaws-greengrass-core-sdk-c.so. ggcore's
 * library talks to the native runtime plugin that started the program, over
 * two pipes; see sdk-c/README.md for what each call does and returns.
 *
 * Plain C89 apart from <stdint.h>; usable from C++.
 */
#ifndef _GREENGRASS_SDK_H_
#define _GREENGRASS_SDK_H_

#ifdef __cplusplus
extern "C" {
#endif

#include <stdlib.h>
#include <stdint.h>
#include <sys/types.h>

/* ------------------------------------------------------------------ */
/* Types                                                              */
/* ------------------------------------------------------------------ */

/* What every gg_* function returns. */
typedef enum gg_error {
    /* The call did what was asked (check the request status for the core's answer). */
    GGE_SUCCESS = 0,
    /* Memory could not be allocated. */
    GGE_OUT_OF_MEMORY,
    /* An argument is wrong: a required pointer is NULL, a string is not UTF-8,
     * an enum value or option bit is unknown, or the core refused the request
     * as malformed or too large. */
    GGE_INVALID_PARAMETER,
    /* Called at the wrong time: before gg_global_init, gg_runtime_start a
     * second time, or a gg_lambda_handler_* call outside an invocation. */
    GGE_INVALID_STATE,
    /* The library failed: the connection to ggcore is gone, or a bug. */
    GGE_INTERNAL_FAILURE,
    /* gg_runtime_start ended because ggcore (or SIGTERM) asked the function to stop. */
    GGE_TERMINATE,

    GGE_RESERVED_MAX,
    GGE_RESERVED_PAD = 0x7FFFFFFF
} gg_error;

/* An opaque request: holds the core's answer to one call until it is read. */
typedef struct _gg_request *gg_request;

/* How the core answered a call (in gg_request_result). */
typedef enum gg_request_status {
    /* The call succeeded; the answer (if any) is in the request. */
    GG_REQUEST_SUCCESS = 0,
    /* The invoked function reported an error; its error document is in the request. */
    GG_REQUEST_HANDLED,
    /* The invoked function failed (crashed, timed out); the error is in the request. */
    GG_REQUEST_UNHANDLED,
    /* The core could not serve the call; {"code": ..., "message": ...} is in the request. */
    GG_REQUEST_UNKNOWN,
    /* A queue was full: the message was not accepted; try again later. */
    GG_REQUEST_AGAIN,

    GG_REQUEST_RESERVED_MAX,
    GG_REQUEST_RESERVED_PAD = 0x7FFFFFFF
} gg_request_status;

/* Filled in by the calls that talk to the core. */
typedef struct gg_request_result {
    /* The core's answer. */
    gg_request_status request_status;
} gg_request_result;

/* What a handler is told about the invocation it serves. Both strings are
 * NUL-terminated and valid until the handler returns. */
typedef struct gg_lambda_context {
    /* This function's ARN. */
    const char *function_arn;
    /* The invocation's client context as JSON text; "" when there is none. */
    const char *client_context;
} gg_lambda_context;

/* How gg_invoke calls another function. */
typedef enum gg_invoke_type {
    /* Fire and forget: the core queues the event and answers at once. */
    GG_INVOKE_EVENT,
    /* Wait for the function's result. */
    GG_INVOKE_REQUEST_RESPONSE,

    GG_INVOKE_RESERVED_MAX,
    GG_INVOKE_RESERVED_PAD = 0x7FFFFFFF
} gg_invoke_type;

/* Option bits for gg_runtime_start. */
typedef enum gg_runtime_opt {
    /* Serve invocations on a thread of the library's; gg_runtime_start
     * returns at once and the process exits when ggcore stops it. */
    GG_RT_OPT_ASYNC = 0x1,
    GG_RT_OPT_RESERVED_PAD = 0x7FFFFFFF
} gg_runtime_opt;

/* What gg_invoke sends. */
typedef struct gg_invoke_options {
    /* The target function's ARN (required; may carry a qualifier). */
    const char *function_arn;
    /* Client context: base64 text of a JSON object, or NULL for none. */
    const char *customer_context;
    /* Version or alias of the target, or NULL. */
    const char *qualifier;
    /* GG_INVOKE_EVENT or GG_INVOKE_REQUEST_RESPONSE. */
    gg_invoke_type type;
    /* The event bytes (may be NULL when payload_size is 0). */
    const void *payload;
    /* The number of event bytes. */
    size_t payload_size;
} gg_invoke_options;

/* What the core does with a publish when a subscriber's queue is full. */
typedef enum gg_queue_full_policy_options {
    /* Deliver to every subscriber that has room; the others miss the message. */
    GG_QUEUE_FULL_POLICY_BEST_EFFORT,
    /* Deliver to all subscribers or to none; none gives GG_REQUEST_AGAIN. */
    GG_QUEUE_FULL_POLICY_ALL_OR_ERROR,

    GG_QUEUE_FULL_POLICY_RESERVED_MAX,
    GG_QUEUE_FULL_POLICY_RESERVED_PAD = 0x7FFFFFFF
} gg_queue_full_policy_options;

/* Opaque publish options (gg_publish_options_init / _free). */
typedef struct _gg_publish_options *gg_publish_options;

/* The levels of gg_log. */
typedef enum gg_log_level {
    GG_LOG_RESERVED_NOTSET,

    GG_LOG_DEBUG,
    GG_LOG_INFO,
    GG_LOG_WARN,
    GG_LOG_ERROR,
    /* Logged at FATAL; the process goes on running. */
    GG_LOG_FATAL,

    GG_LOG_RESERVED_MAX,
    GG_LOG_RESERVED_PAD = 0x7FFFFFFF
} gg_log_level;

/* ------------------------------------------------------------------ */
/* Setup                                                              */
/* ------------------------------------------------------------------ */

/* Connects to ggcore: takes the pipes the plugin gave the process, reads the
 * function's start message and starts the library's reader thread. Call it
 * first, from the main thread, before starting threads of your own. opt must
 * be 0. A second call does nothing and succeeds. Outside ggcore it prints a
 * line to stderr and returns GGE_INVALID_STATE. */
gg_error gg_global_init(uint32_t opt);

/* ------------------------------------------------------------------ */
/* Logging                                                            */
/* ------------------------------------------------------------------ */

/* Formats a line like printf and writes it into the function's log at the
 * given level (GG_LOG_DEBUG .. GG_LOG_FATAL). Before gg_global_init the line
 * goes to stderr. */
gg_error gg_log(gg_log_level level, const char *format, ...);

/* ------------------------------------------------------------------ */
/* Requests                                                           */
/* ------------------------------------------------------------------ */

/* Allocates a request into *ggreq; free it with gg_request_close. */
gg_error gg_request_init(gg_request *ggreq);

/* Frees a request made by gg_request_init. */
gg_error gg_request_close(gg_request ggreq);

/* Empties a request (drops an unread answer) so it can serve another call.
 * Exported by AWS's library too, though its header does not declare it. */
gg_error gg_request_reuse(gg_request ggreq);

/* Copies up to buffer_size unread bytes of the request's answer into buffer
 * and sets *amount_read; repeat until *amount_read is 0. buffer may be NULL
 * only when buffer_size is 0. */
gg_error gg_request_read(gg_request ggreq, void *buffer, size_t buffer_size,
                         size_t *amount_read);

/* ------------------------------------------------------------------ */
/* Runtime                                                            */
/* ------------------------------------------------------------------ */

/* A function's handler: called once per invocation. */
typedef void (*gg_lambda_handler)(const gg_lambda_context *cxt);

/* Tells ggcore the function is ready and serves invocations with handler,
 * one at a time. opt is 0 or GG_RT_OPT_ASYNC. Without ASYNC it returns only
 * when ggcore stops the function (GGE_TERMINATE); with it, it returns at once
 * and the process exits when ggcore stops the function. Installs a SIGTERM
 * handler (SIGTERM stops the function the same way). */
gg_error gg_runtime_start(gg_lambda_handler handler, uint32_t opt);

/* Reads the current invocation's event, like gg_request_read. Only during
 * an invocation (from the handler or a thread it waits for). */
gg_error gg_lambda_handler_read(void *buffer, size_t buffer_size,
                                size_t *amount_read);

/* Appends bytes to the current invocation's result (sent when the handler
 * returns). Only during an invocation. */
gg_error gg_lambda_handler_write_response(const void *response,
                                          size_t response_size);

/* Makes the current invocation fail with this message: the caller sees
 * GG_REQUEST_HANDLED and {"errorMessage": error_message}. Only during an
 * invocation. */
gg_error gg_lambda_handler_write_error(const char *error_message);

/* ------------------------------------------------------------------ */
/* Secrets                                                            */
/* ------------------------------------------------------------------ */

/* Asks the core's secrets for secret_id (required); version_id and
 * version_stage may be NULL. The answer (GetSecretValue JSON) is in ggreq. */
gg_error gg_get_secret_value(gg_request ggreq, const char *secret_id,
                             const char *version_id, const char *version_stage,
                             gg_request_result *result);

/* ------------------------------------------------------------------ */
/* Functions                                                          */
/* ------------------------------------------------------------------ */

/* Invokes another function through the core; a RequestResponse result (or
 * error document) is in ggreq. */
gg_error gg_invoke(gg_request ggreq, const gg_invoke_options *opts,
                   gg_request_result *result);

/* ------------------------------------------------------------------ */
/* Messages and shadows                                               */
/* ------------------------------------------------------------------ */

/* Allocates publish options into *opts (policy: best effort). */
gg_error gg_publish_options_init(gg_publish_options *opts);

/* Frees options made by gg_publish_options_init. */
gg_error gg_publish_options_free(gg_publish_options opts);

/* Sets the queue-full policy of publish options. */
gg_error gg_publish_options_set_queue_full_policy(gg_publish_options opts,
        gg_queue_full_policy_options policy);

/* Publishes payload on topic through the core's subscription table. opts
 * may be NULL (the core's default policy). */
gg_error gg_publish_with_options(gg_request ggreq, const char *topic,
        const void *payload, size_t payload_size, const gg_publish_options opts,
        gg_request_result *result);

/* gg_publish_with_options with opts NULL. */
gg_error gg_publish(gg_request ggreq, const char *topic, const void *payload,
                    size_t payload_size, gg_request_result *result);

/* Gets the thing's shadow document from the core's shadow service; the
 * document (or the service's error) is in ggreq. */
gg_error gg_get_thing_shadow(gg_request ggreq, const char *thing_name,
                             gg_request_result *result);

/* Updates the thing's shadow with update_payload (a NUL-terminated JSON
 * document); the service's answer is in ggreq. */
gg_error gg_update_thing_shadow(gg_request ggreq, const char *thing_name,
                                const char *update_payload,
                                gg_request_result *result);

/* Deletes the thing's shadow; the service's answer is in ggreq. */
gg_error gg_delete_thing_shadow(gg_request ggreq, const char *thing_name,
                                gg_request_result *result);

#ifdef __cplusplus
}
#endif

#endif /* _GREENGRASS_SDK_H_ */
