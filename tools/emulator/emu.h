/*
 * bananafs-emulator: shared declarations.
 *
 * The emulator is a stand-in for Google's Gemini image API and for
 * OpenAI-compatible gateways (see gemini-wire.md in the design notes).
 * Each module has a prefix: opt_ (main.c), http_ (http.c), buf_/b64_/sha_
 * (util.c), model_ (models.c), bill_ (billing.c), fault_ (faults.c),
 * img_ (images.c), font_ (font.c), gen_ (gen.c), ia_ (interactions.c),
 * gc_ (generate.c), batch_ (batch.c), files_ (files.c), oai_ (openai.c),
 * ctl_ (control.c).
 *
 * Threading: MHD runs one thread per connection.  Every piece of shared
 * mutable state (billing counters, request log, faults, batches, files)
 * lives in its own module behind its own mutex; no module calls another
 * module while holding its lock, so there is no lock order to respect.
 */
#ifndef EMU_H
#define EMU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

/* ---- options (main.c); written once before the daemon starts, read-only after */
struct emu_opts {
	char key[256];          /* the one valid API key */
	int latency_ms;         /* extra delay before every generation answer */
	int batch_delay_s;      /* PENDING -> SUCCEEDED time of a batch */
	bool jpeg;              /* gemini-3* image answers as JPEG */
	bool noise;             /* photo-like incompressible images (real answer sizes) */
	bool public_ok;         /* allow a non-loopback listen address */
	double gateway_price;   /* USD billed per 200 answer on the gateway */
	char route_from[128];   /* --route-model: requests for this model ... */
	char route_to[128];     /* ... are served (and billed) by this one */
};
extern struct emu_opts emu_opt;

/* ---- growable byte buffer (util.c) */
struct buf {
	char *data;             /* NUL-terminated when non-NULL */
	size_t len;
	size_t cap;
	bool oom;               /* a failed append happened; data is incomplete */
};
void buf_add(struct buf *b, const void *p, size_t n);
void buf_adds(struct buf *b, const char *s);
void buf_printf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void buf_free(struct buf *b);
/* Hands the data to the caller (who frees it) and empties *b. */
char *buf_steal(struct buf *b, size_t *len);

/* Base64 (standard alphabet, padded).  Returns malloc'd NUL-terminated text. */
char *b64_encode(const unsigned char *p, size_t n, size_t *out_len);
/* Decodes; ignores whitespace, rejects other junk. Returns malloc'd bytes or NULL. */
unsigned char *b64_decode(const char *s, size_t n, size_t *out_len);
/* SHA-256 as 64 lowercase hex chars into out[65]. */
void sha256_hex(const void *p, size_t n, char out[65]);
uint64_t fnv1a64(const void *p, size_t n, uint64_t h);
#define FNV_SEED 0xcbf29ce484222325ULL

/* RFC 3339 UTC time of now (or of t when t > 0) into out. */
void util_rfc3339(char *out, size_t n, double t);
double util_now(void);          /* wall clock, seconds */
double util_mono(void);         /* monotonic clock, seconds */
void util_sleep_ms(int ms);
/* A fresh random-looking id of n-1 chars from [a-z0-9] into out[n]. */
void util_id(char *out, size_t n);

/* cJSON helpers: first of two member names (camelCase, snake_case). */
cJSON *json_get2(const cJSON *o, const char *a, const char *b);
const char *json_str2(const cJSON *o, const char *a, const char *b);
char *json_print(const cJSON *j, size_t *len);   /* unformatted, malloc'd */

/* ---- models, sizes, prices (models.c) */
enum model_size { SZ_512, SZ_1K, SZ_2K, SZ_4K, SZ_COUNT };

struct model_info {
	const char *id;
	const char *display;
	unsigned sizes;         /* bit (1 << enum model_size) per accepted size */
	bool wide_aspects;      /* also 1:4 4:1 1:8 8:1 */
	bool fixed_table;       /* gemini-2.5-flash-image pixel table */
	int tokens[SZ_COUNT];   /* output tokens per image */
	int in_image_tokens;    /* tokens one input image counts (Pro ~560, others ~1120) */
	bool thinks;            /* thinks before drawing (Pro): thought tokens */
	/* USD per 1M tokens at the standard tier (gemini-wire.md 5.3); input
	 * text and images share one rate, thinking is billed as text output */
	double rate_in, rate_image_out, rate_text_out;
};
/* USD per Google Search query of a grounded request (not discounted). */
#define EMU_SEARCH_QUERY_USD 0.014
const struct model_info *model_find(const char *id);
const struct model_info *model_at(size_t i);     /* NULL past the end */
/* True for the models Google documents Google Search grounding for. */
bool model_takes_search(const struct model_info *m);
const char *model_size_name(enum model_size s);
/* Pixel size for model x size x aspect; false if the aspect is unknown. */
bool model_pixels(const struct model_info *m, enum model_size s,
		  const char *aspect, int *w, int *h);

/* ---- errors, in the three wire flavours */
enum flavor { FL_GOOGLE, FL_IA, FL_OPENAI };

struct emu_err {
	int http;               /* HTTP status */
	const char *grpc;       /* google.rpc status, e.g. "INVALID_ARGUMENT" */
	const char *ia_code;    /* Interactions string code, e.g. "invalid_request" */
	const char *oai_type;   /* OpenAI error type */
	char msg[512];
};
void err_set(struct emu_err *e, int http, const char *grpc, const char *ia,
	     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* ---- the answer a handler builds; http.c sends it */
enum resp_stream { RS_NONE, RS_HUGE, RS_DROP, RS_TRICKLE };

#define RESP_MAX_HDR 6
struct emu_resp {
	int status;
	char *body;             /* malloc'd, owned by the response */
	size_t len;
	const char *ctype;
	int nhdr;
	char hname[RESP_MAX_HDR][48];
	char hval[RESP_MAX_HDR][512];
	enum resp_stream stream;
	uint64_t stream_bytes;  /* RS_HUGE: total body bytes */
	int trickle_ms;         /* RS_TRICKLE: one byte of body every this many ms */
};
void resp_json(struct emu_resp *r, int status, cJSON *j);   /* frees j */
void resp_text(struct emu_resp *r, int status, const char *ctype,
	       const char *text);
void resp_take(struct emu_resp *r, int status, const char *ctype,
	       char *body, size_t len);                     /* takes body */
void resp_header(struct emu_resp *r, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Renders an error in the given flavour (interactions 401-403 from the
 * gateway layer are google-shaped, see http.c). */
void resp_error(struct emu_resp *r, enum flavor fl, const struct emu_err *e);

/* ---- one HTTP request as handlers see it (http.c) */
enum auth_kind { AUTH_NONE, AUTH_KEY, AUTH_BEARER };

struct form_part {
	char name[64];
	char filename[128];
	char ctype[64];
	struct buf data;
};

struct emu_req {
	void *conn;             /* struct MHD_Connection * */
	const char *method;
	const char *path;       /* without query */
	const char *ver;        /* "v1beta" or "v1", or "" */
	const char *rest;       /* path after "/{ver}/" */
	const char *body;
	size_t body_len;
	enum auth_kind auth;
	bool key_ok;
	bool loopback;
	char base[300];         /* "http://host:port" as the client reached us */
	struct form_part *parts;        /* multipart/form-data fields */
	int nparts;
};
const char *http_header(const struct emu_req *q, const char *name);
const char *http_query(const struct emu_req *q, const char *name);
/* Checks the key; on failure fills r in the flavour and returns false. */
bool http_check_auth(const struct emu_req *q, enum flavor fl,
		     struct emu_resp *r);

/* ---- images (images.c, font.c) */
struct img_spec {
	int w, h;
	const char *prompt;
	const char *label;      /* corner text: model size aspect */
	bool jpeg;
	bool noise;             /* random pixels: incompressible, like a photo's size */
	size_t text_bytes;      /* > 0: a tEXt chunk of this many bytes (a hostile server) */
};
/* Renders a deterministic image; returns malloc'd file bytes or NULL. */
unsigned char *img_render(const struct img_spec *s, size_t *len);
/* 5x7 glyph rows (bit 4 = leftmost pixel) for printable ASCII. */
const unsigned char *font_glyph(unsigned char c);

/* ---- faults (faults.c) */
enum fault_kind {
	F_NONE, F_429_MINUTE, F_429_DAY, F_429_ZERO, F_401, F_402, F_403,
	F_500, F_502, F_503, F_504, F_SAFETY, F_TEXT_ONLY, F_MALFORMED,
	F_TRUNC_B64, F_WRONG_SIZE, F_HUGE, F_SLOW, F_DROP, F_JPEG,
	F_ECHO_KEY,             /* 400 (or 200 text) quoting the API key, and in headers */
	F_REDIRECT,             /* 302 (or status) to location */
	F_TRICKLE,              /* the real answer, one byte every delay_ms */
	F_TRUNC_IMAGE,          /* valid base64 of an image cut in half */
	F_BIG_TEXT,             /* the image carries a tEXt chunk of `bytes` bytes */
	F_NOISE,                /* a normal answer with a noise image (see --noise) */
	F_NO_BACKGROUND         /* 400: the model refuses "background": true */
};
struct fault {
	enum fault_kind kind;
	char retry_delay[32];   /* proto Duration, e.g. "2s" */
	int delay_ms;
	int status;             /* 0 = the kind's own status */
	uint64_t bytes;         /* huge-body size; big-text chunk size */
	bool noise;             /* "noise": true: this answer's image is incompressible */
	char model[128];        /* "model": only requests for this model take it; "" = any */
	char quota_id[128];     /* 429-minute: the quotaId ("" = per project per model) */
	char location[256];     /* redirect: the Location header */
};
/* Parses a POST /_emulator/fault body; false + message on a bad one. */
bool fault_add_json(const cJSON *j, char *msg, size_t n);
/* Takes the next pending fault for model (count decremented); kind F_NONE if none. */
struct fault fault_take(const char *model);
int fault_pending(void);
void fault_clear(void);
/* For error-kind faults fills r in the flavour and returns true. Kinds that
 * shape a 200 answer (safety, text-only, ...) return false. */
bool fault_error_resp(const struct fault *f, enum flavor fl,
		      const char *model, struct emu_resp *r);
/* Applies the transport faults (malformed-json, truncated-base64 and
 * drop were handled by the route; huge-body here). True if r replaced. */
bool fault_transport(const struct fault *f, struct emu_resp *r);
/* Cuts a JSON body so it no longer parses (malformed-json). */
void fault_break_json(struct emu_resp *r);

/* ---- a generation request, common to every route (gen.c) */
#define GEN_MAX_IN 16
struct gen_in {
	char mime[64];
	size_t bytes;
	char sha256[65];
};

struct gen_req {
	const char *endpoint;   /* stats name, e.g. "generateContent" */
	const char *ver;        /* API version for error messages */
	char model[128];
	char size[16];          /* as sent, "" = default */
	char aspect[16];        /* as sent, "" = default */
	struct buf prompt;
	int n_in;
	struct gen_in in[GEN_MAX_IN];
	bool want_jpeg;
	bool no_image;          /* the request asked for text only */
	bool search;            /* the Google Search tool was asked for */
	bool has_system;        /* a system instruction came with it */
	char system[256];       /* its start, for the request log */
	bool background;        /* interactions: "background": true */
	int variant;            /* n>1 on gateways: k-th image, 0 = first */
	enum auth_kind auth;
	/* resolved by gen_validate */
	const struct model_info *m;
	enum model_size sz;
	int w, h;
};

struct gen_out {
	unsigned char *img;     /* file bytes, malloc'd */
	size_t len;
	const char *mime;
	char *b64;              /* base64 of img, malloc'd */
	size_t b64_len;
	int tokens;             /* output image tokens */
};

/* The text beside a made image, on every route. */
#define EMU_IMAGE_TEXT "Here is your image."

/* The tokens Google counts for one answer, by kind, and the queries it ran. */
struct gen_usage {
	int text_in, image_in;  /* input */
	int image_out, text_out;
	int thought;            /* reported apart from the output; billed as text output */
	int search;             /* Google Search queries */
};

/*
 * The request's tools and system instruction in either wire shape: flavor
 * interactions (tools [{"type":"google_search"}], "system_instruction" a
 * string) or generateContent/batch (tools [{"googleSearch":{}}] or
 * google_search, "systemInstruction" a Content with text parts).  Refuses
 * what Google refuses.  false with e set.
 */
bool gen_parse_tools(const cJSON *j, struct gen_req *g, bool interactions, struct emu_err *e);
/* The search query the emulator "ran" for g: the prompt's first words. */
void gen_search_query(const struct gen_req *g, char *out, size_t len);
void gen_init(struct gen_req *g, const char *endpoint, enum auth_kind auth);
void gen_free(struct gen_req *g);
void gen_add_text(struct gen_req *g, const char *t);
/* Records an input image given as base64. */
void gen_add_image_b64(struct gen_req *g, const char *mime, const char *b64);
void gen_add_image_raw(struct gen_req *g, const char *mime,
		       const void *p, size_t n);
/* Resolves model, size and aspect; fills e and returns false when Google
 * would refuse the request. */
bool gen_validate(struct gen_req *g, struct emu_err *e);
/* Renders the image, shaped by the fault f (wrong-size, jpeg, noise,
 * big-text, truncated-image; NULL or F_NONE = a normal answer). */
bool gen_render(struct gen_req *g, struct gen_out *o, const struct fault *f);
void gen_out_free(struct gen_out *o);
/* Appends to the request log (call once per generation request). */
void gen_log(const struct gen_req *g, int status);
/*
 * The usage of g's answer: image says whether an image was made, text is
 * the answer's text (NULL: none).  A pure function of its arguments, so
 * the usage an answer reports and the bill for it always agree.
 */
void gen_usage(const struct gen_req *g, bool image, const char *text, struct gen_usage *u);
/* USD for u at g's model rates; route "batch" and "flex" pay half the tokens. */
double gen_cost(const struct gen_req *g, const struct gen_usage *u, const char *route);
/* Bills one made image of g with usage u on route (counters and USD). */
void gen_bill(const struct gen_req *g, const struct gen_usage *u, const char *route);
/* Takes the next fault and applies the answer-wide ones: error kinds and
 * huge-body fill r and return true (answer done); slow and --latency sleep
 * here.  *f receives the fault for the 200-shaping kinds. */
/* gen_pre for a background interaction: the delay (slow fault, --latency)
 * is not slept but returned in *delay_ms, for the interaction to take. */
bool gen_pre_defer(struct fault *f, enum flavor fl, const char *model,
		   struct emu_resp *r, int *delay_ms);
/* GET, cancel and DELETE of background interactions (interactions.c). */
void ia_get(const struct emu_req *q, const char *id, struct emu_resp *r);
void ia_cancel(const struct emu_req *q, const char *id, struct emu_resp *r);
void ia_delete(const struct emu_req *q, const char *id, struct emu_resp *r);
void ia_reset(void);
/* After gen_pre answered with a huge 2xx body: bills it (an image made and sent). */
void gen_bill_huge(const struct fault *f, struct gen_req *g, const char *route);
bool gen_pre(struct fault *f, enum flavor fl, const char *model,
	     struct emu_resp *r);
/* Cuts o->b64 so it is no longer valid base64 of a whole image. */
void gen_truncate_b64(struct gen_out *o);

/* ---- billing and counters (billing.c) */
void bill_count_request(void);
void bill_count_endpoint(const char *endpoint);
void bill_generation(int images);
void bill_search_queries(int n);
/* route: standard, flex, generate, batch, gateway */
void bill_add(const char *model, const char *size, const char *route,
	      int count, double usd);
void bill_log_request(cJSON *entry);    /* takes entry */
cJSON *bill_stats_json(void);
cJSON *bill_requests_json(void);
void bill_reset(void);

/* ---- routes */
void ia_create(const struct emu_req *q, struct emu_resp *r);
void gc_generate(const struct emu_req *q, const char *model,
		 struct emu_resp *r);
void gc_models_list(const struct emu_req *q, struct emu_resp *r);
void gc_models_get(const struct emu_req *q, const char *model,
		   struct emu_resp *r);
/* Builds a generateContent answer for an already validated request. */
cJSON *gc_answer_json(const struct gen_req *g, const struct gen_out *o,
		      const char *text);
/* Parses a GenerateContentRequest (either case) into g. */
bool gc_parse_request(const cJSON *j, struct gen_req *g, struct emu_err *e);

void batch_create(const struct emu_req *q, const char *model,
		  struct emu_resp *r);
void batch_get(const struct emu_req *q, const char *id, struct emu_resp *r);
void batch_cancel(const struct emu_req *q, const char *id,
		  struct emu_resp *r);
void batch_delete(const struct emu_req *q, const char *id,
		  struct emu_resp *r);
void batch_list(const struct emu_req *q, struct emu_resp *r);
void batch_reset(void);

void files_upload(const struct emu_req *q, struct emu_resp *r);
void files_get(const struct emu_req *q, const char *id, struct emu_resp *r);
void files_download(const struct emu_req *q, const char *id,
		    struct emu_resp *r);
/* Stores bytes as a file named files/<id>; returns false on OOM. */
bool files_put(const char *id, const char *display, const char *mime,
	       const char *data, size_t len);
/* Copies a stored file's bytes (malloc'd) or returns NULL. */
char *files_copy(const char *id, size_t *len);
void files_reset(void);

void oai_images_generate(const struct emu_req *q, struct emu_resp *r);
void oai_images_edit(const struct emu_req *q, struct emu_resp *r);
void oai_chat(const struct emu_req *q, struct emu_resp *r);
void oai_image_get(const struct emu_req *q, const char *name,
		   struct emu_resp *r);
void oai_reset(void);

void ctl_handle(const struct emu_req *q, struct emu_resp *r);

/* http.c: starts the multithreaded daemon on an IPv4 address; *bound
 * receives the port actually bound (port 0 = any free port). */
bool http_start(const char *ip, int port, int *bound);
void http_stop(void);

#endif
