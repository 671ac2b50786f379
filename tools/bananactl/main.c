/*
 * main.c - bananactl: the command table, global options and usage.
 * The usage text is the SYNOPSIS of bananactl(1), word for word; the man
 * page test compares them.
 */
#include <err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/bananactl/ctl.h"
#include "tools/bananactl/parse.h"

static int cmd_help(struct ctl *c, int argc, char **argv);

/* One row per command word (OpenBSD relayctl habit): word, handler. */
static const struct command {
	const char *word;
	int (*fn)(struct ctl *, int, char **);
} commands[] = {
	{ "status",	cmd_status },
	{ "wait",	cmd_wait },
	{ "cost",	cmd_cost },
	{ "ledger",	cmd_ledger },
	{ "cache",	cmd_cache },
	{ "regen",	cmd_regen },
	{ "prices",	cmd_prices },
	{ "doctor",	cmd_doctor },
	{ "help",	cmd_help },
};
#define NCOMMANDS ((int)(sizeof(commands) / sizeof(commands[0])))

static const char usage_text[] =
	"usage: bananactl [-h] [-m mount] [-s store] command [argument ...]\n";

/* The per-command forms, as the DESCRIPTION of bananactl(1) lists them. */
static const char commands_text[] =
	"commands:\n"
	"    status [path ...]\n"
	"    wait [--timeout seconds] path ...\n"
	"    cost [--since yyyy-mm-dd] [--by day | model | route]\n"
	"    ledger [--json]\n"
	"    cache stats\n"
	"    cache verify\n"
	"    cache gc [--keep-days days] [--max-size size]\n"
	"    regen path\n"
	"    prices\n"
	"    doctor\n"
	"    help\n";

void
usage_print(bool to_stdout)
{
	FILE *f = to_stdout ? stdout : stderr;

	fputs(usage_text, f);
	fputs(commands_text, f);
}

void
usage(void)
{
	usage_print(false);
	exit(1);
}

static int
cmd_help(struct ctl *c, int argc, char **argv)
{
	(void)c;
	(void)argc;
	(void)argv;
	usage_print(true);
	return 0;
}

/* "status wait cost ..." for error messages; malloc'd. */
static char *
word_list(const char *const *words, int n, const char *prefix)
{
	size_t len = 1;
	char *s;

	for (int i = 0; i < n; i++)
		len += strlen(words[i]) + 1;
	s = xmalloc(len);
	s[0] = '\0';
	for (int i = 0; i < n; i++) {
		if (prefix != NULL && strncmp(words[i], prefix, strlen(prefix)) != 0)
			continue;
		if (s[0] != '\0')
			strcat(s, " ");
		strcat(s, words[i]);
	}
	return s;
}

int
ctl_pick_word(const char *what, const char *word, const char *const *words, int n)
{
	int i = word_match(word, words, n);
	char *list;

	if (i >= 0)
		return i;
	if (i == -2) {
		list = word_list(words, n, word);
		warnx("ambiguous %s \"%s\": %s", what, word, list);
	} else {
		list = word_list(words, n, NULL);
		warnx("unknown %s \"%s\"; valid: %s", what, word, list);
	}
	free(list);
	return -1;
}

int
main(int argc, char **argv)
{
	struct ctl c = { 0 };
	const char *words[NCOMMANDS];
	int ch, i, rc;

	while ((ch = getopt(argc, argv, "+hm:s:")) != -1) {
		switch (ch) {
		case 'h':
			usage_print(true);
			return 0;
		case 'm':
			c.mount_opt = optarg;
			break;
		case 's':
			c.store_opt = optarg;
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		usage();

	for (i = 0; i < NCOMMANDS; i++)
		words[i] = commands[i].word;
	if ((i = ctl_pick_word("command", argv[0], words, NCOMMANDS)) < 0)
		return 1;
	optind = 0;	/* commands parse their own options with getopt_long */
	rc = commands[i].fn(&c, argc, argv);
	free(c.mount);
	free(c.store);
	return rc;
}
