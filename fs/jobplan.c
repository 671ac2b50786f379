/*
 * jobplan.c - the plan of a job (jobplan.h): precedence, validation,
 * candidates.  Pure: everything comes in through struct jobplan_in.
 */
#include <stdio.h>
#include <string.h>
#include "api/route.h"
#include "fs/jobplan.h"

void jobplan_output_name(char *buf, size_t len, const char *stem, int i, int n, const char *ext)
{
	if (n == 1)
		snprintf(buf, len, "%s.%s", stem, ext);
	else
		snprintf(buf, len, "%s-%d.%s", stem, i, ext);
}

int jobplan_refuse(struct failure *why, const char *what, const char *next_move)
{
	failure_init(why, "the prompt was not sent");
	failure_what(why, "%s", what);
	why->whose = WHOSE_USER;
	failure_problem(why, "request");
	why->next_move = next_move;
	return -1;
}

/*
 * The output names a job may write, and whether they fit: every name
 * within NAME_MAX and every path within PATH_MAX as the mount shows it.
 * With output_format = original the extension is known only after the
 * answer, so every one it could be is checked.
 */
static int output_names(const struct jobplan_in *in, struct jobplan *pl, struct failure *why)
{
	static const char *const png_only[] = { "png", NULL };
	static const char *const any_ext[] = { "png", "jpg", "webp", NULL };
	const char *const *exts = in->cfg->output_original ? any_ext : png_only;
	size_t base = in->mount_len + 1 + strlen(in->dir) + 1;
	char what[400];

	pl->nnames = 0;
	for (int i = 1; i <= pl->n; i++) {
		for (int e = 0; exts[e]; e++) {
			char *name = pl->names[pl->nnames];

			jobplan_output_name(name, JOBPLAN_NAME_LEN, in->stem, i, pl->n, exts[e]);
			if (strlen(name) > NAME_MAX) {
				snprintf(what, sizeof(what), "the prompt's name is too long for its image's name "
					 "(%zu bytes; a name holds at most %d); nothing was sent. Give the "
					 "prompt a shorter name", strlen(name), NAME_MAX);
				return jobplan_refuse(why, what, "shorten the name or the path and save the prompt again");
			}
			if (base + strlen(name) >= PATH_MAX) {
				snprintf(what, sizeof(what), "the image's path would be %zu bytes, longer than the "
					 "%d a path may hold; nothing was sent. Move the prompt to a shallower "
					 "folder or give it a shorter name", base + strlen(name), PATH_MAX - 1);
				return jobplan_refuse(why, what, "shorten the name or the path and save the prompt again");
			}
			pl->nnames++;
		}
	}
	return 0;
}

int jobplan_make(const struct jobplan_in *in, struct jobplan *pl, struct failure *why)
{
	const struct prompt *p = in->prompt;
	const struct folder_conf *fc = in->folder;
	char err[1024];

	memset(pl, 0, sizeof(*pl));
	pl->in = in;
	pl->n = p->n;
	/* The prompt's header wins over the folders' .bananafs.conf, which win over the config. */
	pl->aspect = p->aspect[0] ? p->aspect : fc->aspect[0] ? fc->aspect : in->cfg->default_aspect;
	if (p->route_set)
		pl->route = p->route;
	else if (fc->route_set)
		pl->route = fc->route;
	else if (route_parse(in->cfg->route, &pl->route) < 0)
		pl->route = ROUTE_STANDARD;
	if (prompt_check(p, in->model, in->size, pl->aspect, err, sizeof(err)) < 0 ||
	    prompt_check_route(p, in->model, pl->route, in->cfg->gateway_api == GATEWAY_API_IMAGES,
			       err, sizeof(err)) < 0)
		return jobplan_refuse(why, err, "fix the prompt file and save it again");
	return output_names(in, pl, why);
}

void jobplan_request(const struct jobplan *pl, int i, const struct ref_image *refs, int nrefs,
		     const char *origin, struct gen_request *rq)
{
	const struct prompt *p = pl->in->prompt;

	*rq = (struct gen_request){
		.model = pl->in->model, .size = pl->in->size, .aspect = pl->aspect,
		.prompt = p->text, .prompt_len = p->len,
		.prompt_as_written = p->text_as_written, .prompt_as_written_len = p->len_as_written,
		.refs = refs, .nrefs = nrefs, .system = p->system, .search = p->search,
		.n = pl->n, .index = i, .variant = p->variant, .route = pl->route, .origin = origin,
	};
}
