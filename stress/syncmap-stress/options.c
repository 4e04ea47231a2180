/*
 * options.c - the command line, workload presets, and the reproduce line.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "stress.h"

const char *const ss_op_names[OP__N] = {
	"load", "store", "delete", "load_and_delete", "load_or_store", "swap",
	"cas", "cad", "range", "clear", "len",
};
const char *const ss_workload_names[WL__N] = {"churn", "read99", "read90", "mix", "gomap-churn"};
const char *const ss_dist_names[DIST__N] = {"uniform", "zipf", "collide"};

struct ss_config cfg;

/* Default mixes (percent weights; they are normalized). */
static const double mix_churn[OP__N] = {
	[OP_LOAD] = 20, [OP_STORE] = 25, [OP_LOS] = 10, [OP_SWAP] = 5,
	[OP_DELETE] = 25, [OP_LAD] = 10, [OP_CAS] = 3, [OP_CAD] = 2,
};
static const double mix_read99[OP__N] = {[OP_LOAD] = 99, [OP_STORE] = 0.5, [OP_DELETE] = 0.5};
static const double mix_read90[OP__N] = {[OP_LOAD] = 90, [OP_STORE] = 5, [OP_DELETE] = 5};
static const double mix_all[OP__N] = {
	[OP_LOAD] = 55, [OP_STORE] = 10, [OP_DELETE] = 5, [OP_LAD] = 5, [OP_LOS] = 5,
	[OP_SWAP] = 5, [OP_CAS] = 5, [OP_CAD] = 5, [OP_RANGE] = 0.001, [OP_CLEAR] = 0.00005,
	[OP_LEN] = 0.5,
};
static const double mix_gomap[OP__N] = {
	[OP_LOAD] = 30, [OP_STORE] = 35, [OP_DELETE] = 35, [OP_RANGE] = 0.002,
	[OP_CLEAR] = 0.00002, [OP_LEN] = 1,
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: syncmap-stress [options]\n"
		"\n"
		"Hammers one syncmap from many threads with a verified op mix; exits non-zero\n"
		"on any failure and prints the seed and the command that reproduces the run.\n"
		"\n"
		"workload\n"
		"  -w, --workload NAME   churn (default): insert/delete churn over a key space\n"
		"                        larger than what is live, in waves (growth, shrink,\n"
		"                        promotions, dirty rebuilds, tombstones);\n"
		"                        read99, read90: read-mostly (99/1, 90/10), prefilled;\n"
		"                        mix: every op of the API (see --mix);\n"
		"                        gomap-churn: drive gomap directly, one map per thread,\n"
		"                        with a reference check (same as --map gomap)\n"
		"      --map syncmap|gomap\n"
		"      --mix SPEC        op weights, e.g. load=60,store=10,delete=10,load_or_store=5,\n"
		"                        swap=5,cas=5,cad=5,range=0.001,clear=0.0001,len=1\n"
		"                        (also load_and_delete; weights are normalized; ops not\n"
		"                        named get 0); replaces the workload's mix\n"
		"      --prefill F       store this fraction of the keys before the run\n"
		"      --wave N          churn: ops per thread per grow/shrink wave (0 = off)\n"
		"      --slide F         churn: inserts aim at a window of this fraction of the\n"
		"                        keys that slides through them (deletes aim anywhere),\n"
		"                        so the live set moves (0 = off)\n"
		"keys\n"
		"  -d, --dist NAME       uniform (default), zipf, collide (keys sharing bucket\n"
		"                        index and tophash under the fixed map seed)\n"
		"  -k, --keys N          key space (suffix k = 1024, m = 1048576)\n"
		"      --owned N         keys each thread owns (writes alone, predicts exactly)\n"
		"      --key-len N       key length in bytes (4..%d; >8 = keys stored out of line)\n"
		"      --zipf-s F        zipf skew (default 0.99)\n"
		"      --collide-bits N  low hash bits a colliding group shares (default: enough\n"
		"                        for one bucket at the largest size the key space needs)\n"
		"      --collide-group N keys per colliding group (default 64)\n"
		"      --own-frac F      fraction of writes on the thread's own keys (0.25)\n"
		"      --other-frac F    fraction of loads on other threads' own keys (0.1)\n"
		"run\n"
		"  -t, --threads N       worker threads (default: all online CPUs)\n"
		"  -D, --duration S      seconds (default 30)\n"
		"  -n, --ops N           ops per thread instead of a duration\n"
		"  -s, --seed N          run seed (printed; a run replays from it: the same keys\n"
		"                        and per-thread op sequences, not the same interleaving)\n"
		"      --map-seed N      the map's hash seed (default: derived from --seed); random:\n"
		"                        each map picks one (a gomap anew whenever it empties;\n"
		"                        bucket placement then does not replay)\n"
		"      --reclaim on|off  on (default): values are heap objects the map frees\n"
		"                        (free_value set); off: tagged words, free_value NULL\n"
		"      --no-reclaim      same as --reclaim off\n"
		"      --owner map|caller\n"
		"                        map (default): every value leaves through free_value;\n"
		"                        caller (needs --reclaim on): delete and load_and_delete\n"
		"                        are syncmap_take, and the tool disposes of each value\n"
		"                        handed over: syncmap_retire, or its own free after\n"
		"                        syncmap_synchronize, or a move to another owned key\n"
		"      --quarantine N    freed values kept poisoned before the real free (65536)\n"
		"      --section N       ops per syncmap_read_lock section (8)\n"
		"      --fork S          every S seconds (fractions too: 0.5) fork while the\n"
		"                        workers run; the child checks the inherited map and a\n"
		"                        new one, frees both and exits; the parent waits and\n"
		"                        fails the run if the child fails or hangs (0 = off).\n"
		"                        The children's ops replay from --seed, the moments of\n"
		"                        the forks do not\n"
		"      --shards N|auto   the map's shard count: a power of two up to %d;\n"
		"                        1 = one sync.Map (Go's design); auto (default, 0):\n"
		"                        the library's choice for this machine (%u here; the\n"
		"                        report says which: pass it to replay elsewhere)\n"
		"output\n"
		"      --progress MODE   auto (default: live line on a tty, plain lines else),\n"
		"                        live, plain, off\n"
		"  -q, --quiet           --progress off\n"
		"      --json            final report as JSON on stdout\n"
		"      --sample N        time every Nth op per thread for latency (64)\n"
		"  -h, --help, --version\n",
		SS_KEY_MAX, SYNCMAP_MAX_SHARDS, syncmap_default_shards());
}

/* Numbers: decimal or 0x hex, optional suffix k (1024) or m (1048576). */
static int parse_u64(const char *opt, const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || end == s || *s == '-')
		goto bad;
	if (*end == 'k' || *end == 'K')
		v <<= 10, end++;
	else if (*end == 'm' || *end == 'M')
		v <<= 20, end++;
	if (*end)
		goto bad;
	*out = v;
	return 0;
bad:
	fprintf(stderr, "syncmap-stress: %s: not a number: '%s'\n", opt, s);
	return -1;
}

static int parse_double(const char *opt, const char *s, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || v < 0) {
		fprintf(stderr, "syncmap-stress: %s: not a non-negative number: '%s'\n", opt, s);
		return -1;
	}
	*out = v;
	return 0;
}

static int op_by_name(const char *name, size_t len)
{
	static const struct {
		const char *alias;
		int op;
	} aliases[] = {{"lad", OP_LAD}, {"los", OP_LOS}, {"compare_and_swap", OP_CAS},
		       {"compare_and_delete", OP_CAD}};
	for (int i = 0; i < OP__N; i++)
		if (strlen(ss_op_names[i]) == len && !strncmp(ss_op_names[i], name, len))
			return i;
	for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++)
		if (strlen(aliases[i].alias) == len && !strncmp(aliases[i].alias, name, len))
			return aliases[i].op;
	return -1;
}

static int parse_mix(const char *spec)
{
	double mix[OP__N] = {0};
	const char *p = spec;
	while (*p) {
		const char *eq = strchr(p, '=');
		const char *comma = strchr(p, ',');
		if (!comma)
			comma = p + strlen(p);
		if (!eq || eq > comma) {
			fprintf(stderr, "syncmap-stress: --mix: expected op=weight in '%s'\n", spec);
			return -1;
		}
		int op = op_by_name(p, (size_t)(eq - p));
		if (op < 0) {
			fprintf(stderr, "syncmap-stress: --mix: unknown op '%.*s' (ops:", (int)(eq - p), p);
			for (int i = 0; i < OP__N; i++)
				fprintf(stderr, " %s", ss_op_names[i]);
			fprintf(stderr, ")\n");
			return -1;
		}
		char num[64];
		size_t nl = (size_t)(comma - eq - 1);
		if (nl == 0 || nl >= sizeof(num)) {
			fprintf(stderr, "syncmap-stress: --mix: bad weight for %s\n", ss_op_names[op]);
			return -1;
		}
		memcpy(num, eq + 1, nl);
		num[nl] = 0;
		if (parse_double("--mix", num, &mix[op]) != 0)
			return -1;
		p = *comma ? comma + 1 : comma;
	}
	double sum = 0;
	for (int i = 0; i < OP__N; i++)
		sum += mix[i];
	if (sum <= 0) {
		fprintf(stderr, "syncmap-stress: --mix: all weights are zero\n");
		return -1;
	}
	memcpy(cfg.mix, mix, sizeof(mix));
	cfg.mix_given = true;
	return 0;
}

static int parse_workload(const char *s)
{
	for (int i = 0; i < WL__N; i++)
		if (!strcmp(s, ss_workload_names[i])) {
			cfg.workload = (enum ss_workload)i;
			return 0;
		}
	if (!strcmp(s, "gomap")) {
		cfg.workload = WL_GOMAP;
		return 0;
	}
	fprintf(stderr, "syncmap-stress: unknown workload '%s' (churn, read99, read90, mix, gomap-churn)\n", s);
	return -1;
}

static int parse_dist(const char *s)
{
	for (int i = 0; i < DIST__N; i++)
		if (!strcmp(s, ss_dist_names[i])) {
			cfg.dist = (enum ss_dist)i;
			return 0;
		}
	if (!strcmp(s, "zipfian")) {
		cfg.dist = DIST_ZIPF;
		return 0;
	}
	fprintf(stderr, "syncmap-stress: unknown distribution '%s' (uniform, zipf, collide)\n", s);
	return -1;
}

static int parse_onoff(const char *opt, const char *s, bool *out)
{
	if (!strcmp(s, "on") || !strcmp(s, "1") || !strcmp(s, "yes") || !strcmp(s, "true"))
		*out = true;
	else if (!strcmp(s, "off") || !strcmp(s, "0") || !strcmp(s, "no") || !strcmp(s, "false"))
		*out = false;
	else {
		fprintf(stderr, "syncmap-stress: %s: expected on or off, got '%s'\n", opt, s);
		return -1;
	}
	return 0;
}

int ss_parse_options(int argc, char **argv)
{
	uint64_t keys = 0, owned = UINT64_MAX, threads = 0, v;
	double prefill = -1, wave = -1, slide = -1;
	bool wave_given = false, map_seed_given = false, shards_given = false;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	memset(&cfg, 0, sizeof(cfg));
	cfg.argc = argc;
	cfg.argv = argv;
	cfg.workload = WL_CHURN;
	cfg.dist = DIST_UNIFORM;
	cfg.duration = 30;
	cfg.klen = 8;
	cfg.reclaim = true;
	cfg.zipf_s = 0.99;
	cfg.collide_bits = -1;
	cfg.collide_group = 64;
	cfg.own_frac = 0.25;
	cfg.other_frac = 0.1;
	cfg.progress = -1;
	cfg.sample_every = 64;
	cfg.quarantine = 65536;
	cfg.section_ops = 8;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = NULL;
		char name[64];
		if (a[0] != '-') {
			fprintf(stderr, "syncmap-stress: unexpected argument '%s' (see --help)\n", a);
			return 2;
		}
		/* --name=value or --name value */
		const char *eq = strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
		if (eq) {
			size_t n = (size_t)(eq - a);
			if (n >= sizeof(name))
				n = sizeof(name) - 1;
			memcpy(name, a, n);
			name[n] = 0;
			val = eq + 1;
		} else {
			snprintf(name, sizeof(name), "%s", a);
		}
		static const char *const flags[] = {"-h", "--help", "--version", "--no-reclaim", "-q",
						    "--quiet", "--json"};
		bool is_flag = false;
		for (size_t f = 0; f < sizeof(flags) / sizeof(flags[0]); f++)
			if (!strcmp(name, flags[f]))
				is_flag = true;
		if (!is_flag && !val) {
			if (i + 1 >= argc) {
				fprintf(stderr, "syncmap-stress: %s needs a value (see --help)\n", name);
				return 2;
			}
			val = argv[++i];
		}
#define IS(s) (!strcmp(name, s))
		if (IS("-h") || IS("--help")) {
			usage(stdout);
			exit(0);
		} else if (IS("--version")) {
			printf("syncmap-stress %s (syncmap %s)\n", SS_VERSION, syncmap_version());
			exit(0);
		} else if (IS("-w") || IS("--workload")) {
			if (parse_workload(val))
				return 2;
		} else if (IS("--map")) {
			if (!strcmp(val, "gomap"))
				cfg.workload = WL_GOMAP;
			else if (strcmp(val, "syncmap")) {
				fprintf(stderr, "syncmap-stress: --map: syncmap or gomap\n");
				return 2;
			}
		} else if (IS("-d") || IS("--dist")) {
			if (parse_dist(val))
				return 2;
		} else if (IS("-t") || IS("--threads")) {
			if (parse_u64(name, val, &threads) || threads == 0 || threads > SS_MAX_THREADS) {
				fprintf(stderr, "syncmap-stress: --threads: 1..%d\n", SS_MAX_THREADS);
				return 2;
			}
		} else if (IS("-D") || IS("--duration")) {
			if (parse_double(name, val, &cfg.duration))
				return 2;
		} else if (IS("-n") || IS("--ops")) {
			if (parse_u64(name, val, &cfg.ops))
				return 2;
		} else if (IS("-k") || IS("--keys")) {
			if (parse_u64(name, val, &keys))
				return 2;
		} else if (IS("--owned")) {
			if (parse_u64(name, val, &owned))
				return 2;
		} else if (IS("--key-len")) {
			if (parse_u64(name, val, &v) || v < 4 || v > SS_KEY_MAX) {
				fprintf(stderr, "syncmap-stress: --key-len: 4..%d\n", SS_KEY_MAX);
				return 2;
			}
			cfg.klen = (unsigned)v;
		} else if (IS("-s") || IS("--seed")) {
			if (parse_u64(name, val, &cfg.seed))
				return 2;
			cfg.seed_given = true;
		} else if (IS("--map-seed")) {
			if (!strcmp(val, "random")) {
				cfg.map_seed = 0; /* each map picks its own (gomap: anew whenever it empties) */
			} else if (parse_u64(name, val, &cfg.map_seed) || cfg.map_seed == 0) {
				fprintf(stderr, "syncmap-stress: --map-seed: a nonzero number, or random\n");
				return 2;
			}
			map_seed_given = true;
		} else if (IS("--reclaim")) {
			if (parse_onoff(name, val, &cfg.reclaim))
				return 2;
		} else if (IS("--owner")) {
			if (!strcmp(val, "caller")) {
				cfg.owner_caller = true;
			} else if (!strcmp(val, "map")) {
				cfg.owner_caller = false;
			} else {
				fprintf(stderr, "syncmap-stress: --owner: map or caller, not '%s'\n", val);
				return 2;
			}
		} else if (IS("--no-reclaim")) {
			cfg.reclaim = false;
		} else if (IS("--zipf-s")) {
			if (parse_double(name, val, &cfg.zipf_s) || cfg.zipf_s <= 0) {
				fprintf(stderr, "syncmap-stress: --zipf-s: > 0\n");
				return 2;
			}
		} else if (IS("--collide-bits")) {
			if (parse_u64(name, val, &v) || v > 24) {
				fprintf(stderr, "syncmap-stress: --collide-bits: 0..24\n");
				return 2;
			}
			cfg.collide_bits = (int)v;
		} else if (IS("--collide-group")) {
			if (parse_u64(name, val, &v) || v == 0 || v > 1u << 20) {
				fprintf(stderr, "syncmap-stress: --collide-group: 1..1m\n");
				return 2;
			}
			cfg.collide_group = (unsigned)v;
		} else if (IS("--mix")) {
			if (parse_mix(val))
				return 2;
		} else if (IS("--prefill")) {
			if (parse_double(name, val, &prefill) || prefill > 1) {
				fprintf(stderr, "syncmap-stress: --prefill: 0..1\n");
				return 2;
			}
		} else if (IS("--wave")) {
			if (parse_double(name, val, &wave))
				return 2;
			wave_given = true;
		} else if (IS("--slide")) {
			if (parse_double(name, val, &slide) || slide > 1) {
				fprintf(stderr, "syncmap-stress: --slide: 0..1\n");
				return 2;
			}
		} else if (IS("--own-frac")) {
			if (parse_double(name, val, &cfg.own_frac) || cfg.own_frac > 1)
				return 2;
		} else if (IS("--other-frac")) {
			if (parse_double(name, val, &cfg.other_frac) || cfg.other_frac > 1)
				return 2;
		} else if (IS("--progress")) {
			if (!strcmp(val, "auto"))
				cfg.progress = -1;
			else if (!strcmp(val, "off") || !strcmp(val, "no"))
				cfg.progress = 0;
			else if (!strcmp(val, "plain"))
				cfg.progress = 1;
			else if (!strcmp(val, "live") || !strcmp(val, "tty"))
				cfg.progress = 2;
			else {
				fprintf(stderr, "syncmap-stress: --progress: auto, live, plain or off\n");
				return 2;
			}
		} else if (IS("-q") || IS("--quiet")) {
			cfg.progress = 0;
		} else if (IS("--json")) {
			cfg.json = true;
		} else if (IS("--sample")) {
			if (parse_u64(name, val, &v) || v == 0 || v > 1u << 30)
				return 2;
			cfg.sample_every = (unsigned)v;
		} else if (IS("--quarantine")) {
			if (parse_u64(name, val, &v) || v > 1u << 26)
				return 2;
			cfg.quarantine = (size_t)v;
		} else if (IS("--fork")) {
			if (parse_double(name, val, &cfg.fork_every))
				return 2;
		} else if (IS("--shards")) {
			if (!strcmp(val, "auto")) {
				v = 0;
			} else if (parse_u64(name, val, &v)) {
				return 2;
			} else if (v > SYNCMAP_MAX_SHARDS || (v & (v - 1)) != 0) {
				fprintf(stderr, "syncmap-stress: --shards: a power of two from 1 to %d, or 0 / auto "
						"(the library's choice), not '%s'\n",
					SYNCMAP_MAX_SHARDS, val);
				return 2;
			}
			cfg.shards = (unsigned)v;
			shards_given = true;
		} else if (IS("--section")) {
			if (parse_u64(name, val, &v) || v == 0 || v > 1u << 20)
				return 2;
			cfg.section_ops = (unsigned)v;
		} else {
			fprintf(stderr, "syncmap-stress: unknown option '%s' (see --help)\n", name);
			return 2;
		}
#undef IS
	}

	/* ---- defaults that depend on other choices ---- */
	cfg.threads = threads ? (unsigned)threads : (unsigned)(ncpu > 0 ? (ncpu > SS_MAX_THREADS ? SS_MAX_THREADS : ncpu) : 1);
	if (!keys) {
		/* Small enough that promotions (misses >= len(dirty)) come
		 * several times a second, big enough to grow a few times. */
		if (cfg.dist == DIST_COLLIDE)
			keys = 1024;
		else
			keys = 1u << 16;
	}
	cfg.keys = keys;
	if (cfg.keys < 16 || cfg.keys > (1ULL << 31)) {
		fprintf(stderr, "syncmap-stress: --keys: 16..2^31\n");
		return 2;
	}
	if (!cfg.reclaim && cfg.keys > (1ULL << SS_TAG_KEY_BITS)) {
		fprintf(stderr, "syncmap-stress: --reclaim off encodes the key in the value word: --keys <= %llu\n",
			1ULL << SS_TAG_KEY_BITS);
		return 2;
	}
	if (map_seed_given && cfg.map_seed == 0 && cfg.dist == DIST_COLLIDE) {
		fprintf(stderr, "syncmap-stress: --dist collide needs a fixed --map-seed (keys collide under one seed)\n");
		return 2;
	}
	if (cfg.klen < 8 && cfg.dist == DIST_COLLIDE) {
		fprintf(stderr, "syncmap-stress: --dist collide needs --key-len >= 8\n");
		return 2;
	}
	if (cfg.klen < 8 && cfg.keys > (1ULL << (8 * cfg.klen))) {
		fprintf(stderr, "syncmap-stress: --key-len %u holds at most %llu keys\n", cfg.klen,
			1ULL << (8 * cfg.klen));
		return 2;
	}
	if (cfg.workload == WL_GOMAP && (shards_given || cfg.owner_caller || cfg.fork_every > 0)) {
		fprintf(stderr, "syncmap-stress: %s applies to the syncmap workloads, not gomap-churn\n",
			shards_given ? "--shards" : cfg.owner_caller ? "--owner caller" : "--fork");
		return 2;
	}
	if (cfg.owner_caller && !cfg.reclaim) {
		fprintf(stderr, "syncmap-stress: --owner caller needs --reclaim on: without free_value the map owns "
				"nothing to hand over (syncmap_take is load_and_delete)\n");
		return 2;
	}
	if (cfg.workload == WL_GOMAP) {
		cfg.owned = 0;
	} else if (owned == UINT64_MAX) {
		uint64_t cap = cfg.keys / (4 * cfg.threads);
		cfg.owned = cap < 1024 ? cap : 1024;
	} else {
		cfg.owned = owned;
		if (cfg.owned * cfg.threads > cfg.keys - cfg.keys / 4) {
			fprintf(stderr, "syncmap-stress: --owned %llu x %u threads leaves too few shared keys (< 1/4 of --keys)\n",
				(unsigned long long)cfg.owned, cfg.threads);
			return 2;
		}
	}
	if (!cfg.mix_given) {
		const double *m = cfg.workload == WL_CHURN    ? mix_churn
				  : cfg.workload == WL_READ99 ? mix_read99
				  : cfg.workload == WL_READ90 ? mix_read90
				  : cfg.workload == WL_GOMAP  ? mix_gomap
							      : mix_all;
		memcpy(cfg.mix, m, sizeof(cfg.mix));
	}
	cfg.have_clear = cfg.mix[OP_CLEAR] > 0;
	if (prefill < 0)
		prefill = cfg.workload == WL_READ99 || cfg.workload == WL_READ90 || cfg.workload == WL_MIX ? 0.5 : 0;
	cfg.prefill = prefill;
	if (!wave_given)
		wave = cfg.workload == WL_CHURN || cfg.workload == WL_GOMAP
			       ? (double)(cfg.keys * 8 / (cfg.workload == WL_GOMAP ? 1 : cfg.threads))
			       : 0;
	cfg.wave = (uint64_t)wave;
	if (slide < 0)
		slide = cfg.workload == WL_GOMAP || cfg.workload == WL_CHURN ? 0.25 : 0;
	cfg.slide = slide >= 1 ? 0 : slide;
	if (cfg.progress < 0)
		cfg.progress = isatty(STDERR_FILENO) ? 2 : 1;
	if (!cfg.seed_given) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		cfg.seed = sm_splitmix64((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)getpid()) % 1000000000000ULL;
	}
	if (!map_seed_given)
		cfg.map_seed = sm_splitmix64(cfg.seed ^ 0x6d61702d73656564ULL) | 1;
	return 0;
}

/* ---- the reproduce line ------------------------------------------------ */

static void append(char **buf, size_t *len, size_t *cap, const char *s)
{
	size_t n = strlen(s);
	if (*len + n + 1 > *cap) {
		*cap = (*len + n + 1) * 2;
		*buf = realloc(*buf, *cap);
		if (!*buf)
			abort();
	}
	memcpy(*buf + *len, s, n + 1);
	*len += n;
}

/* Shell-quote one word when it needs it. */
static void append_word(char **buf, size_t *len, size_t *cap, const char *w)
{
	bool plain = *w != 0;
	for (const char *p = w; *p; p++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=.,/:+%@", *p))
			plain = false;
	if (*len)
		append(buf, len, cap, " ");
	if (plain) {
		append(buf, len, cap, w);
		return;
	}
	append(buf, len, cap, "'");
	for (const char *p = w; *p; p++) {
		char c[2] = {*p, 0};
		append(buf, len, cap, *p == '\'' ? "'\\''" : c);
	}
	append(buf, len, cap, "'");
}

const char *ss_reproduce_line(void)
{
	static char *line;
	if (line)
		return line;
	size_t len = 0, cap = 0;
	const char *launcher = getenv("SYNCMAP_STRESS_LAUNCHER");
	append(&line, &len, &cap, "");
	append_word(&line, &len, &cap, launcher && *launcher ? launcher : cfg.argv[0]);
	if (!cfg.seed_given) {
		char s[32];
		snprintf(s, sizeof(s), "%" PRIu64, cfg.seed);
		append_word(&line, &len, &cap, "--seed");
		append_word(&line, &len, &cap, s);
	}
	for (int i = 1; i < cfg.argc; i++)
		append_word(&line, &len, &cap, cfg.argv[i]);
	return line;
}

unsigned ss_shards_effective(void)
{
	return cfg.shards ? cfg.shards : syncmap_default_shards();
}

const char *ss_config_line(void)
{
	static char buf[512];
	char shards[48], fork[48] = "";
	if (cfg.fork_every > 0)
		snprintf(fork, sizeof(fork), ", fork every %g s", cfg.fork_every);
	if (cfg.shards)
		snprintf(shards, sizeof(shards), "%u", cfg.shards);
	else
		snprintf(shards, sizeof(shards), "auto (%u)", ss_shards_effective());
	if (cfg.workload == WL_GOMAP)
		snprintf(buf, sizeof(buf), "workload %s, dist %s, %u threads (one gomap each), keys %" PRIu64 ", key-len %u",
			 ss_workload_names[cfg.workload], ss_dist_names[cfg.dist], cfg.threads, cfg.keys, cfg.klen);
	else
		snprintf(buf, sizeof(buf),
			 "workload %s, dist %s, %u threads, keys %" PRIu64 " (%" PRIu64
			 " owned per thread), key-len %u, reclaim %s, shards %s%s%s",
			 ss_workload_names[cfg.workload], ss_dist_names[cfg.dist], cfg.threads, cfg.keys, cfg.owned,
			 cfg.klen, cfg.reclaim ? "on" : "off", shards, cfg.owner_caller ? ", owner caller" : "", fork);
	return buf;
}
