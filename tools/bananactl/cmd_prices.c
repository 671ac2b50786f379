/*
 * cmd_prices.c - "bananactl prices": the mount's .bananafs/prices, or the
 * built-in table (prices_render) when nothing is mounted.
 */
#include <err.h>
#include <stdio.h>
#include <stdlib.h>

#include "api/prices.h"
#include "cache/config.h"
#include "tools/bananactl/ctl.h"

int
cmd_prices(struct ctl *c, int argc, char **argv)
{
	char *path, *text;

	(void)argv;
	if (argc != 1)
		usage();
	if (ctl_resolve(c, NULL) < 0)
		return 1;
	if (c->mount != NULL) {
		path = ctl_mount_file(c, "prices");
		text = ctl_read_file(path, NULL);
		if (text == NULL) {
			warn("%s", path);
			free(path);
			return 1;
		}
		free(path);
	} else {
		struct config cfg = { 0 };

		/* Loading the config applies its [prices] overrides to the table. */
		ctl_load_config(&cfg, NULL);
		config_free(&cfg);
		if ((text = prices_render()) == NULL) {
			warnx("cannot render the price table");
			return 1;
		}
	}
	fputs(text, stdout);
	free(text);
	if (c->mount == NULL)
		printf("(not mounted: built-in table checked %s, with the config's [prices])\n",
		       prices_checked);
	return 0;
}
