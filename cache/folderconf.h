/*
 * folderconf.h - per-folder defaults: a `.bananafs.conf` in a folder below
 * a size folder applies to every prompt below it; a deeper file wins, and
 * a prompt's own header wins over all of them.
 *
 *   route = batch
 *   aspect = 16:9
 */
#ifndef BANANAFS_CACHE_FOLDERCONF_H
#define BANANAFS_CACHE_FOLDERCONF_H

#include <stdbool.h>
#include <stddef.h>
#include "api/request.h"

#define FOLDER_CONF_NAME ".bananafs.conf"

struct folder_conf {
	char aspect[8];			/* "" when no file sets it */
	enum route route;
	bool route_set;
};

/*
 * Reads the .bananafs.conf files on the way from the size folder (the
 * first two components of dir) down to dir, all relative to tree_fd.
 * Missing files are fine.  0, or -1 with "FILE:LINE: what is wrong" in err.
 */
int folder_conf_load(int tree_fd, const char *dir, struct folder_conf *fc, char *err, size_t errlen);

#endif
