/*
 * errors.h - turning failures into an err_class and words a person can act on.
 */
#ifndef BANANAFS_API_ERRORS_H
#define BANANAFS_API_ERRORS_H

#include "api/http.h"
#include "api/request.h"

/*
 * Parses a non-2xx answer: google.rpc.Status ({"error":{code:int,status,
 * message,details[]}}), Interactions ({"error":{code:"string",message}}),
 * either wrapped in a JSON array, or a non-JSON body.  Fills http_status,
 * api_status, message, quota_id, quota_value, retry_after_s (RetryInfo, else
 * the Retry-After header), request_id, and cls.
 */
void errors_parse(const struct http_resp *resp, struct gen_result *res);

/* Classifies from what is already in res (status, api_status, quota). */
enum err_class errors_classify(const struct gen_result *res);

/* Parses a proto Duration string ("25s", "0.5s", "18073s"); -1 on bad input. */
double errors_parse_duration(const char *s);

/* "credentials", "project or policy", ... : whose problem, per DESIGN.md section 1. */
const char *errors_whose(enum err_class c);
/* The next move, one sentence, per DESIGN.md section 1. */
const char *errors_next_move(enum err_class c);

#endif
