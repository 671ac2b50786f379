/*
 * tree.h - the fixed part of the mount: root, model folders, size folders,
 * alias symlinks and .bananafs/.  Everything below a size folder is the
 * user's, passed through to STORE/tree/.
 */
#ifndef BANANAFS_FS_TREE_H
#define BANANAFS_FS_TREE_H

#include "api/models.h"

enum node_kind {
	NODE_NONE = 0,		/* does not exist in the fixed tree */
	NODE_ROOT,
	NODE_MODEL,		/* /gemini-3-pro-image */
	NODE_SIZE,		/* /gemini-3-pro-image/2K */
	NODE_ALIAS,		/* /pro -> gemini-3-pro-image */
	NODE_CTL_DIR,		/* /.bananafs */
	NODE_CTL_FILE,		/* /.bananafs/stats ... */
	NODE_USER,		/* below a size folder: passthrough */
};

struct node {
	enum node_kind kind;
	const struct model_info *model;	/* MODEL, SIZE, ALIAS, USER */
	const char *size;		/* SIZE, USER: points into model->sizes */
	const char *rel;		/* backing path relative to STORE/tree ("." for root) */
	const char *ctl;		/* CTL_FILE: its name */
};

#define CTL_DIR_NAME ".bananafs"

/* Classifies an absolute FUSE path.  n->rel points into path (after the '/'). */
void tree_classify(const char *path, struct node *n);
/* The control file names, NULL-terminated. */
extern const char *const tree_ctl_files[];
/* Creates STORE/tree/MODEL/SIZE for every model. 0 or -1 (errno). */
int tree_prepare(int tree_fd);

#endif
