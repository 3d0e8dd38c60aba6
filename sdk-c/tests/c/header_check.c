/* Compiled (not run) by tests/c_api.rs as C89 with -pedantic-errors, and as
 * C++: the header must be plain enough for both, and its enum values and
 * struct layouts must be AWS's. A failed check is a negative array size. */

#include <stddef.h>

#include "greengrasssdk.h"

#define CHECK(name, cond) typedef char check_##name[(cond) ? 1 : -1]

CHECK(success, GGE_SUCCESS == 0);
CHECK(oom, GGE_OUT_OF_MEMORY == 1);
CHECK(param, GGE_INVALID_PARAMETER == 2);
CHECK(state, GGE_INVALID_STATE == 3);
CHECK(internal, GGE_INTERNAL_FAILURE == 4);
CHECK(terminate, GGE_TERMINATE == 5);
CHECK(error_max, GGE_RESERVED_MAX == 6);
CHECK(error_size, sizeof(gg_error) == 4);
CHECK(req_success, GG_REQUEST_SUCCESS == 0);
CHECK(req_handled, GG_REQUEST_HANDLED == 1);
CHECK(req_unhandled, GG_REQUEST_UNHANDLED == 2);
CHECK(req_unknown, GG_REQUEST_UNKNOWN == 3);
CHECK(req_again, GG_REQUEST_AGAIN == 4);
CHECK(req_max, GG_REQUEST_RESERVED_MAX == 5);
CHECK(invoke_event, GG_INVOKE_EVENT == 0);
CHECK(invoke_rr, GG_INVOKE_REQUEST_RESPONSE == 1);
CHECK(invoke_max, GG_INVOKE_RESERVED_MAX == 2);
CHECK(rt_async, GG_RT_OPT_ASYNC == 1);
CHECK(policy_best, GG_QUEUE_FULL_POLICY_BEST_EFFORT == 0);
CHECK(policy_all, GG_QUEUE_FULL_POLICY_ALL_OR_ERROR == 1);
CHECK(policy_max, GG_QUEUE_FULL_POLICY_RESERVED_MAX == 2);
CHECK(log_notset, GG_LOG_RESERVED_NOTSET == 0);
CHECK(log_debug, GG_LOG_DEBUG == 1);
CHECK(log_fatal, GG_LOG_FATAL == 5);
CHECK(log_max, GG_LOG_RESERVED_MAX == 6);
CHECK(result_layout, sizeof(gg_request_result) == 4);
CHECK(context_layout, offsetof(gg_lambda_context, client_context) == sizeof(void *));
CHECK(invoke_type_at, offsetof(gg_invoke_options, type) == 3 * sizeof(void *));
CHECK(invoke_size_at, offsetof(gg_invoke_options, payload_size) == 5 * sizeof(void *));

/* Every function, by type: a changed declaration fails to compile. */
gg_error (*const check_init)(uint32_t) = gg_global_init;
gg_error (*const check_log)(gg_log_level, const char *, ...) = gg_log;
gg_error (*const check_req_init)(gg_request *) = gg_request_init;
gg_error (*const check_req_close)(gg_request) = gg_request_close;
gg_error (*const check_req_reuse)(gg_request) = gg_request_reuse;
gg_error (*const check_req_read)(gg_request, void *, size_t, size_t *) = gg_request_read;
gg_error (*const check_start)(gg_lambda_handler, uint32_t) = gg_runtime_start;
gg_error (*const check_h_read)(void *, size_t, size_t *) = gg_lambda_handler_read;
gg_error (*const check_h_resp)(const void *, size_t) = gg_lambda_handler_write_response;
gg_error (*const check_h_err)(const char *) = gg_lambda_handler_write_error;
gg_error (*const check_secret)(gg_request, const char *, const char *, const char *, gg_request_result *) = gg_get_secret_value;
gg_error (*const check_invoke)(gg_request, const gg_invoke_options *, gg_request_result *) = gg_invoke;
gg_error (*const check_po_init)(gg_publish_options *) = gg_publish_options_init;
gg_error (*const check_po_free)(gg_publish_options) = gg_publish_options_free;
gg_error (*const check_po_set)(gg_publish_options, gg_queue_full_policy_options) = gg_publish_options_set_queue_full_policy;
gg_error (*const check_pub_opts)(gg_request, const char *, const void *, size_t, const gg_publish_options, gg_request_result *) =
    gg_publish_with_options;
gg_error (*const check_pub)(gg_request, const char *, const void *, size_t, gg_request_result *) = gg_publish;
gg_error (*const check_get)(gg_request, const char *, gg_request_result *) = gg_get_thing_shadow;
gg_error (*const check_update)(gg_request, const char *, const char *, gg_request_result *) = gg_update_thing_shadow;
gg_error (*const check_delete)(gg_request, const char *, gg_request_result *) = gg_delete_thing_shadow;
