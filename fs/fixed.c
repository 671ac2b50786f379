/*
 * fixed.c - see fixed.h.
 */
#include <errno.h>
#include "fs/fixed.h"

int fixed_change_errno(enum node_kind k)
{
	switch (k) {
	case NODE_NONE:
		return ENOENT;
	case NODE_CTL_DIR:
	case NODE_CTL_FILE:
		return EROFS;
	default:
		return EPERM;
	}
}

int fixed_create_errno(enum node_kind parent)
{
	switch (parent) {
	case NODE_CTL_DIR:
		return EROFS;
	case NODE_NONE:
	case NODE_CTL_FILE:
		return ENOENT;
	default:
		return EPERM;
	}
}
