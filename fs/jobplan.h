/*
 * jobplan.h - the plan of a prompt's job, as a pure function.
 *
 * Given the parsed prompt, the folders' .bananafs.conf, the mount config
 * and where the prompt sits (model and size folder, its folder and name),
 * the plan says which settings win (the prompt's header over the folders'
 * .bananafs.conf over the config), whether the combination may be sent at
 * all, and the candidates: the request of each (so its cache key) and the
 * output names that must be free before anything is paid.  No I/O, no
 * mutable state: fs/jobs.c reads the files and the input images, asks for
 * the plan, then does the walking and the placing.  The model catalogue is
 * constant data; a retired model is judged by the injected clock
 * (models_use_clock).
 */
#ifndef BANANAFS_FS_JOBPLAN_H
#define BANANAFS_FS_JOBPLAN_H

#include <limits.h>
#include <stddef.h>
#include "api/request.h"
#include "cache/config.h"
#include "cache/failure.h"
#include "cache/folderconf.h"
#include "cache/prompt.h"

#define JOBPLAN_NAME_LEN (NAME_MAX + 32)	/* an output name may be too long: it is refused, not cut */
#define JOBPLAN_MAX_NAMES (PROMPT_MAX_N * 3)	/* n candidates, each as png, jpg or webp */

struct jobplan_in {
	const struct prompt *prompt;	/* parsed (prompt_parse) */
	const struct folder_conf *folder;	/* the folders' .bananafs.conf, merged (folder_conf_load) */
	const struct config *cfg;	/* the mount's */
	const char *model, *size;	/* the size folder the prompt is below */
	const char *dir;		/* the prompt's folder, relative to the tree ("" at the top) */
	const char *stem;		/* the prompt's name without .txt */
	size_t mount_len;		/* bytes of the mount point's path (0 when not known): paths are
					   checked as the mount shows them */
};

struct jobplan {
	const struct jobplan_in *in;	/* borrowed: the plan points into it */
	const char *aspect;		/* header, else folder, else config */
	enum route route;		/* header, else folder, else config, else standard */
	int n;				/* candidates, 1..PROMPT_MAX_N */
	char names[JOBPLAN_MAX_NAMES][JOBPLAN_NAME_LEN];	/* every name an output may take */
	int nnames;
};

/*
 * Plans the job of in.  0, or -1 with *why filled (the prompt is refused
 * before anything is sent: an aspect or option the model or route does not
 * take, an output name or path too long).  The plan borrows from in, which
 * must outlive it.
 */
int jobplan_make(const struct jobplan_in *in, struct jobplan *plan, struct failure *why);
/*
 * The request of candidate i (1..plan->n), with the reference images
 * loaded for the prompt's inputs; origin is the prompt's path for the
 * ledger.  Its cache key is key_compute(rq).
 */
void jobplan_request(const struct jobplan *plan, int i, const struct ref_image *refs, int nrefs,
		     const char *origin, struct gen_request *rq);
/*
 * A prompt refused before anything is sent, the user's move: "the prompt
 * was not sent", what happened (copied into *why) and the next move
 * (borrowed: a string constant).  Returns -1.
 */
int jobplan_refuse(struct failure *why, const char *what, const char *next_move);
/* The output name of candidate i of n: NAME.EXT, or NAME-i.EXT for n > 1. */
void jobplan_output_name(char *buf, size_t len, const char *stem, int i, int n, const char *ext);

#endif
