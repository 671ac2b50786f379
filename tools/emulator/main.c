/* bananafs-emulator: command line, start-up and shutdown. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emu.h"

struct emu_opts emu_opt = {
	.key = "emulator-key",
	.batch_delay_s = 2,
	.gateway_price = 0.05,
};

static const char usage_line[] =
	"usage: bananafs-emulator [--listen ADDR:PORT] [--key KEY] [--latency MS] "
	"[--batch-delay SECONDS] [--jpeg] [--noise] [--public] [--gateway-price USD] "
	"[--route-model FROM=TO] [-h|--help]\n";

static void usage(FILE *f)
{
	fputs(usage_line, f);
}

static void help(void)
{
	usage(stdout);
	fputs("\nA local stand-in for the Gemini image API and OpenAI-compatible gateways.\n\n"
	      "  --listen ADDR:PORT     address to listen on (default 127.0.0.1:8555; port 0 = any)\n"
	      "  --key KEY              the valid API key (default emulator-key)\n"
	      "  --latency MS           delay added to every generation answer\n"
	      "  --batch-delay SECONDS  time a batch takes to succeed (default 2)\n"
	      "  --jpeg                 answer gemini-3* image requests with JPEG\n"
	      "  --noise                photo-like incompressible images (real answer sizes)\n"
	      "  --public               allow a non-loopback listen address\n"
	      "  --gateway-price USD    price billed per gateway answer (default 0.05)\n"
	      "  --route-model FROM=TO  serve (and bill) requests for FROM with TO, as Google\n"
	      "                         routes deprecated models to their successor\n"
	      "  -h, --help             show this help\n", stdout);
}

/* Checked integer option in [lo, hi]. */
static bool parse_int(const char *s, long lo, long hi, int *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return false;
	*out = (int)v;
	return true;
}

static bool parse_listen(const char *s, char *ip, size_t n, int *port)
{
	const char *colon = strrchr(s, ':');
	if (!colon || colon == s || (size_t)(colon - s) >= n)
		return false;
	memcpy(ip, s, (size_t)(colon - s));
	ip[colon - s] = '\0';
	if (!strcmp(ip, "localhost"))
		snprintf(ip, n, "127.0.0.1");
	struct in_addr a;
	if (inet_pton(AF_INET, ip, &a) != 1)
		return false;
	return parse_int(colon + 1, 0, 65535, port);
}

int main(int argc, char **argv)
{
	char ip[64] = "127.0.0.1";
	int port = 8555;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		bool ok = true;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			help();
			return 0;
		} else if (!strcmp(a, "--jpeg")) {
			emu_opt.jpeg = true;
			continue;
		} else if (!strcmp(a, "--noise")) {
			emu_opt.noise = true;
			continue;
		} else if (!strcmp(a, "--public")) {
			emu_opt.public_ok = true;
			continue;
		}
		if (!v) {
			fprintf(stderr, "bananafs-emulator: %s needs a value\n", a);
			usage(stderr);
			return 1;
		}
		i++;
		if (!strcmp(a, "--listen")) {
			ok = parse_listen(v, ip, sizeof ip, &port);
		} else if (!strcmp(a, "--key")) {
			ok = *v && strlen(v) < sizeof emu_opt.key;
			if (ok)
				snprintf(emu_opt.key, sizeof emu_opt.key, "%s", v);
		} else if (!strcmp(a, "--latency")) {
			ok = parse_int(v, 0, 600000, &emu_opt.latency_ms);
		} else if (!strcmp(a, "--batch-delay")) {
			ok = parse_int(v, 0, 86400, &emu_opt.batch_delay_s);
		} else if (!strcmp(a, "--route-model")) {
			const char *eq = strchr(v, '=');
			ok = eq && eq > v && (size_t)(eq - v) < sizeof emu_opt.route_from &&
			     model_find(eq + 1) != NULL;
			if (ok) {
				snprintf(emu_opt.route_from, sizeof emu_opt.route_from, "%.*s",
					 (int)(eq - v), v);
				snprintf(emu_opt.route_to, sizeof emu_opt.route_to, "%s", eq + 1);
			}
		} else if (!strcmp(a, "--gateway-price")) {
			char *end;
			emu_opt.gateway_price = strtod(v, &end);
			ok = end != v && !*end && emu_opt.gateway_price >= 0;
		} else {
			fprintf(stderr, "bananafs-emulator: unknown option %s\n", a);
			usage(stderr);
			return 1;
		}
		if (!ok) {
			fprintf(stderr, "bananafs-emulator: bad value for %s: %s\n", a, v);
			usage(stderr);
			return 1;
		}
	}

	if (strncmp(ip, "127.", 4) != 0 && !emu_opt.public_ok) {
		fprintf(stderr, "bananafs-emulator: refusing non-loopback address %s "
			"(use --public)\n", ip);
		return 1;
	}

	/* worker threads inherit this mask; only sigwait below sees the signals */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	int bound = 0;
	if (!http_start(ip, port, &bound)) {
		fprintf(stderr, "bananafs-emulator: cannot listen on %s:%d\n", ip, port);
		return 1;
	}
	printf("listening on http://%s:%d\n", ip, bound);
	fflush(stdout);

	int sig = 0;
	sigwait(&set, &sig);
	fprintf(stderr, "bananafs-emulator: signal %d, shutting down\n", sig);
	http_stop();
	batch_reset();
	files_reset();
	oai_reset();
	bill_reset();
	return 0;
}
