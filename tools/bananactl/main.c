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

/*
 * One row per command word (OpenBSD relayctl habit): word, handler, its
 * form as the DESCRIPTION of bananactl(1) lists it, and one line on what
 * it does (for "COMMAND --help").
 */
static const struct command {
	const char *word;
	int (*fn)(struct ctl *, int, char **);
	const char *form;
	const char *what;
} commands[] = {
	{ "status",	cmd_status,	"status [path ...]",
	  "list the mount's jobs (of the prompts or folders given) and a summary" },
	{ "wait",	cmd_wait,	"wait [--timeout seconds] path ...",
	  "block until each prompt is finished; exit 1 when one failed, 2 on timeout or a path that is no prompt" },
	{ "run",	cmd_run,	"run path ...",
	  "send prompts that were priced by a dry run, failed or were cancelled (a deliberate, ledgered send)" },
	{ "cancel",	cmd_cancel,	"cancel path ...",
	  "stop the queued or running job of each prompt" },
	{ "cost",	cmd_cost,	"cost [--since yyyy-mm-dd] [--by day | model | route] [--team]",
	  "sum the billed lines of the ledger (--team: every mount's rows in the team database), and what a dry run priced" },
	{ "ledger",	cmd_ledger,	"ledger [--json]",
	  "show every line of the ledger" },
	{ "cache",	cmd_cache,	"cache stats\n    cache verify\n    cache gc [--keep-days days] [--max-size size]",
	  "count, check or trim the store's cached images" },
	{ "regen",	cmd_regen,	"regen path",
	  "knowingly pay for a new image of an unchanged prompt" },
	{ "prices",	cmd_prices,	"prices",
	  "show the price table" },
	{ "doctor",	cmd_doctor,	"doctor",
	  "check, step by step, what a working mount needs; the mount checks its own key" },
	{ "help",	cmd_help,	"help [command]",
	  "show this text, or a command's" },
};
#define NCOMMANDS ((int)(sizeof(commands) / sizeof(commands[0])))

static const char usage_text[] =
	"usage: bananactl [-h] [-m mount] [-s store] command [argument ...]\n";

static const char options_text[] =
	"-m, -s and -h may come anywhere on the line; \"command --help\" or -h shows its usage.\n";

void
usage_print(bool to_stdout)
{
	FILE *f = to_stdout ? stdout : stderr;

	fputs(usage_text, f);
	fputs(options_text, f);
	fputs("commands:\n", f);
	for (int i = 0; i < NCOMMANDS; i++)
		fprintf(f, "    %s\n", commands[i].form);
}

void
usage(void)
{
	usage_print(false);
	exit(1);
}

/* "usage: bananactl [-m mount] [-s store] FORM" (a line per form) and what it does, on stdout. */
static void
command_help(const struct command *cmd)
{
	const char *form = cmd->form;

	for (bool first = true; *form != '\0'; first = false) {
		size_t n = strcspn(form, "\n");

		printf("%s bananactl [-m mount] [-s store] %.*s\n", first ? "usage:" : "      ", (int)n, form);
		form += n;
		form += strspn(form, "\n ");
	}
	printf("%s\n", cmd->what);
}

static int
cmd_help(struct ctl *c, int argc, char **argv)
{
	const char *words[NCOMMANDS];
	int i;

	(void)c;
	if (argc > 2)
		usage();
	if (argc == 1) {
		usage_print(true);
		return 0;
	}
	for (i = 0; i < NCOMMANDS; i++)
		words[i] = commands[i].word;
	if ((i = ctl_pick_word("command", argv[1], words, NCOMMANDS)) < 0)
		return 1;
	command_help(&commands[i]);
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

/*
 * Takes the global options out of argv wherever they stand ("bananactl
 * cost -m banana"), so a command's getopt_long sees only its own.  "--"
 * ends them (it and what follows are the command's).  Leaves the command
 * word and its arguments in argv[0..*argcp-1].  Exits 1 on a bad global
 * option before the command word.
 */
static void
take_globals(struct ctl *c, int *argcp, char **argv, bool *help)
{
	int argc = *argcp, out = 0;
	bool have_command = false;

	for (int i = 1; i < argc; i++) {
		char *a = argv[i];

		if (strcmp(a, "--") == 0) {
			if (!have_command)
				i++;	/* "bananactl -- status": the command word follows */
			while (i < argc)
				argv[out++] = argv[i++];
			break;
		}
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			*help = true;
		} else if (a[0] == '-' && (a[1] == 'm' || a[1] == 's')) {
			const char *v = a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : NULL);

			if (v == NULL) {
				warnx("option -%c wants an argument", a[1]);
				usage();
			}
			if (a[1] == 'm')
				c->mount_opt = v;
			else
				c->store_opt = v;
		} else if (a[0] == '-' && a[1] != '\0' && !have_command) {
			warnx("unknown option %s", a);
			usage();
		} else {
			have_command = true;
			argv[out++] = a;
		}
	}
	argv[out] = NULL;
	*argcp = out;
}

int
main(int argc, char **argv)
{
	struct ctl c = { 0 };
	const char *words[NCOMMANDS];
	bool help = false;
	int i, rc;

	take_globals(&c, &argc, argv, &help);
	if (argc < 1) {
		if (help) {
			usage_print(true);
			return 0;
		}
		usage();
	}

	for (i = 0; i < NCOMMANDS; i++)
		words[i] = commands[i].word;
	if ((i = ctl_pick_word("command", argv[0], words, NCOMMANDS)) < 0)
		return 1;
	if (help) {
		command_help(&commands[i]);
		return 0;
	}
	optind = 0;	/* commands parse their own options with getopt_long */
	rc = commands[i].fn(&c, argc, argv);
	free(c.mount);
	free(c.store);
	return rc;
}
