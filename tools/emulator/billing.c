/* What would have been billed, request counters, and the request log that
 * tests read through /_emulator/stats and /_emulator/requests. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emu.h"

#define LOG_MAX 100
#define MAX_ENDPOINTS 32
#define MAX_BILLED 128

struct billed {
	char model[128];
	char size[16];
	char route[16];
	long count;
	double usd;
};

static pthread_mutex_t bill_mu = PTHREAD_MUTEX_INITIALIZER;
/* everything below is protected by bill_mu */
static long n_requests;
static long n_generations;
static long n_search_queries;	/* Google Search queries run for grounded requests */
static double total_usd;
static struct { char name[48]; long n; } endpoints[MAX_ENDPOINTS];
static int n_endpoints;
static struct billed billed[MAX_BILLED];
static int n_billed;
static cJSON *req_log[LOG_MAX];         /* ring, oldest at log_head */
static int log_head, log_len;

void bill_count_request(void)
{
	pthread_mutex_lock(&bill_mu);
	n_requests++;
	pthread_mutex_unlock(&bill_mu);
}

void bill_count_endpoint(const char *endpoint)
{
	pthread_mutex_lock(&bill_mu);
	int i;
	for (i = 0; i < n_endpoints; i++)
		if (strcmp(endpoints[i].name, endpoint) == 0)
			break;
	if (i == n_endpoints && n_endpoints < MAX_ENDPOINTS) {
		snprintf(endpoints[i].name, sizeof endpoints[i].name, "%s", endpoint);
		endpoints[i].n = 0;
		n_endpoints++;
	}
	if (i < n_endpoints)
		endpoints[i].n++;
	pthread_mutex_unlock(&bill_mu);
}

void bill_search_queries(int n)
{
	pthread_mutex_lock(&bill_mu);
	n_search_queries += n;
	pthread_mutex_unlock(&bill_mu);
}

void bill_generation(int images)
{
	pthread_mutex_lock(&bill_mu);
	n_generations += images;
	pthread_mutex_unlock(&bill_mu);
}

void bill_add(const char *model, const char *size, const char *route,
	      int count, double usd)
{
	pthread_mutex_lock(&bill_mu);
	total_usd += usd;
	int i;
	for (i = 0; i < n_billed; i++)
		if (!strcmp(billed[i].model, model) && !strcmp(billed[i].size, size) &&
		    !strcmp(billed[i].route, route))
			break;
	if (i == n_billed && n_billed < MAX_BILLED) {
		memset(&billed[i], 0, sizeof billed[i]);
		snprintf(billed[i].model, sizeof billed[i].model, "%s", model);
		snprintf(billed[i].size, sizeof billed[i].size, "%s", size);
		snprintf(billed[i].route, sizeof billed[i].route, "%s", route);
		n_billed++;
	}
	if (i < n_billed) {
		billed[i].count += count;
		billed[i].usd += usd;
	}
	pthread_mutex_unlock(&bill_mu);
}

void bill_log_request(cJSON *entry)
{
	pthread_mutex_lock(&bill_mu);
	if (log_len == LOG_MAX) {
		cJSON_Delete(req_log[log_head]);
		req_log[log_head] = entry;
		log_head = (log_head + 1) % LOG_MAX;
	} else {
		req_log[(log_head + log_len) % LOG_MAX] = entry;
		log_len++;
	}
	pthread_mutex_unlock(&bill_mu);
}

/* USD sums are rounded to 1e-9 so 0.1 + 0.2 style noise stays out of JSON
 * (not coarser: one token costs fractions of a micro-dollar). */
static double round9(double v)
{
	return (double)(long long)(v * 1e9 + (v >= 0 ? 0.5 : -0.5)) / 1e9;
}

cJSON *bill_stats_json(void)
{
	cJSON *j = cJSON_CreateObject();
	int pending = fault_pending();      /* faults.c has its own lock */
	pthread_mutex_lock(&bill_mu);
	cJSON_AddNumberToObject(j, "requests", (double)n_requests);
	cJSON_AddNumberToObject(j, "generations", (double)n_generations);
	cJSON_AddNumberToObject(j, "search_queries", (double)n_search_queries);
	cJSON_AddNumberToObject(j, "billed_usd", round9(total_usd));
	cJSON *be = cJSON_AddObjectToObject(j, "by_endpoint");
	for (int i = 0; i < n_endpoints; i++)
		cJSON_AddNumberToObject(be, endpoints[i].name, (double)endpoints[i].n);
	cJSON *bl = cJSON_AddArrayToObject(j, "billed");
	for (int i = 0; i < n_billed; i++) {
		cJSON *e = cJSON_CreateObject();
		cJSON_AddStringToObject(e, "model", billed[i].model);
		cJSON_AddStringToObject(e, "size", billed[i].size);
		cJSON_AddStringToObject(e, "route", billed[i].route);
		cJSON_AddNumberToObject(e, "count", (double)billed[i].count);
		cJSON_AddNumberToObject(e, "usd", round9(billed[i].usd));
		cJSON_AddItemToArray(bl, e);
	}
	pthread_mutex_unlock(&bill_mu);
	cJSON_AddNumberToObject(j, "faults_pending", pending);
	return j;
}

cJSON *bill_requests_json(void)
{
	cJSON *a = cJSON_CreateArray();
	pthread_mutex_lock(&bill_mu);
	for (int i = 0; i < log_len; i++)
		cJSON_AddItemToArray(a, cJSON_Duplicate(req_log[(log_head + i) % LOG_MAX], 1));
	pthread_mutex_unlock(&bill_mu);
	return a;
}

void bill_reset(void)
{
	pthread_mutex_lock(&bill_mu);
	n_requests = n_generations = n_search_queries = 0;
	total_usd = 0;
	n_endpoints = n_billed = 0;
	for (int i = 0; i < log_len; i++)
		cJSON_Delete(req_log[(log_head + i) % LOG_MAX]);
	log_head = log_len = 0;
	pthread_mutex_unlock(&bill_mu);
}
