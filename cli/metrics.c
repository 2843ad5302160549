// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmig metrics: the counters of this network namespace's pinned groups
 * and the kernel's migration counters in the Prometheus text format
 * (version 0.0.4), once on stdout, into a file for node_exporter's
 * textfile collector, or served over HTTP on a local address.
 *
 * Everything comes from the pinned maps and /proc/net/netstat at each
 * scrape; nothing is kept here, so counters survive a restart of this
 * command (they live as long as the group).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "sockmig.h"
#include "status.h"

#define MAX_MEMBERS	   1024
#define REQUEST_TIMEOUT_MS 2000

static const char *const kind_label[SOCKMIG_KIND_MAX] = {
	[SOCKMIG_KIND_ESTABLISHED] = "established",
	[SOCKMIG_KIND_TFO] = "tfo",
	[SOCKMIG_KIND_REQ_TIMER] = "request_timer",
	[SOCKMIG_KIND_REQ_ACK] = "request_ack",
};

static volatile sig_atomic_t stop;

static void on_stop(int sig)
{
	(void)sig;
	stop = 1;
}

static void family_help(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

struct scrape {
	int ngroups;
	char (*names)[SOCKMIG_NAME_MAX];
	char (*ports)[8];		 /* per group: its port, as a label */
	struct sockmig_member_info **mi; /* per group, NULL when unreadable */
	int *nmi;
	const char **policy;
	struct sockmig_event_ring *ring; /* per group: drains since it was made */
	struct udp_group *us;		 /* the UDP groups, as sockmig status reads them */
	int nu;
};

static void scrape_free(struct scrape *s)
{
	for (int i = 0; i < s->ngroups; i++)
		free(s->mi[i]);
	free(s->mi);
	free(s->nmi);
	free(s->policy);
	free(s->ring);
	free(s->names);
	free(s->ports);
	status_udp_free(s->us, s->nu);
}

static int scrape_read(struct scrape *s, int port)
{
	memset(s, 0, sizeof(*s));
	s->ngroups = cli_group_names(port, &s->names);
	if (s->ngroups < 0)
		return s->ngroups;
	s->mi = calloc((size_t)s->ngroups + 1, sizeof(*s->mi));
	s->nmi = calloc((size_t)s->ngroups + 1, sizeof(*s->nmi));
	s->policy = calloc((size_t)s->ngroups + 1, sizeof(*s->policy));
	s->ring = calloc((size_t)s->ngroups + 1, sizeof(*s->ring));
	s->ports = calloc((size_t)s->ngroups + 1, sizeof(*s->ports));
	if (!s->mi || !s->nmi || !s->policy || !s->ring || !s->ports) {
		scrape_free(s);
		return -ENOMEM;
	}
	for (int i = 0; i < s->ngroups; i++) {
		struct sockmig_group *g = sockmig_group_open_name(s->names[i], NULL);
		struct sockmig_group_id id;

		if (sockmig_group_id_parse(s->names[i], &id) == 0)
			snprintf(s->ports[i], sizeof(s->ports[i]), "%u", id.port);

		if (!g)
			continue;
		s->mi[i] = calloc(MAX_MEMBERS, sizeof(**s->mi));
		if (s->mi[i])
			s->nmi[i] = sockmig_members(g, s->mi[i], MAX_MEMBERS);
		if (s->nmi[i] < 0)
			s->nmi[i] = 0;
		if (s->nmi[i] > MAX_MEMBERS)
			s->nmi[i] = MAX_MEMBERS;
		s->policy[i] = sockmig_policy_str(sockmig_group_policy(g));
		sockmig_group_event_ring(g, &s->ring[i]);
		sockmig_group_close(g);
	}
	/* a UDP group that cannot be listed or read is left out, as in status */
	s->nu = status_udp_read(sockmig_netns_self(), port, 0, NULL, &s->us);
	if (s->nu < 0)
		s->nu = 0;
	return 0;
}

/* One counter or gauge per member of every readable group. */
static void member_family(FILE *f, const struct scrape *s, const char *name, const char *type,
			  const char *help, uint64_t (*value)(const struct sockmig_member_info *))
{
	family_help(f, name, type, help);
	for (int i = 0; i < s->ngroups; i++)
		for (int j = 0; j < s->nmi[i]; j++)
			fprintf(f, "%s{group=\"%s\",port=\"%s\",member=\"%llu\"} %llu\n", name,
				s->names[i], s->ports[i], (unsigned long long)s->mi[i][j].cookie,
				(unsigned long long)value(&s->mi[i][j]));
}

static uint64_t v_steered(const struct sockmig_member_info *m)
{
	return m->counters.steered;
}
static uint64_t v_deferred(const struct sockmig_member_info *m)
{
	return m->counters.deferred;
}
static uint64_t v_cancelled(const struct sockmig_member_info *m)
{
	return m->counters.cancel_mismatch;
}
static uint64_t v_kicked(const struct sockmig_member_info *m)
{
	return m->counters.kicked;
}
static uint64_t v_generation(const struct sockmig_member_info *m)
{
	return m->generation;
}
static uint64_t v_weight(const struct sockmig_member_info *m)
{
	return m->weight;
}

/* Migrations per member and kind, in or out. */
static void migrated_family(FILE *f, const struct scrape *s, bool in)
{
	const char *name =
		in ? "sockmig_member_migrated_in_total" : "sockmig_member_migrated_out_total";

	family_help(f, name, "counter",
		    in ? "Connections migrated to this member, by kind."
		       : "Connections migrated away from this member when it closed, by kind.");
	for (int i = 0; i < s->ngroups; i++)
		for (int j = 0; j < s->nmi[i]; j++)
			for (int k = 0; k < SOCKMIG_KIND_MAX; k++)
				fprintf(f,
					"%s{group=\"%s\",port=\"%s\",member=\"%llu\",kind=\"%s\"} "
					"%llu\n",
					name, s->names[i], s->ports[i],
					(unsigned long long)s->mi[i][j].cookie, kind_label[k],
					(unsigned long long)(in ? s->mi[i][j].counters
									     .migrated_in[k]
								: s->mi[i][j].counters
									     .migrated_out[k]));
}

/* Per group, from its event ring: every drain through the library since
 * the group was made (a group made again starts over: a counter reset). */
static void drain_families(FILE *f, const struct scrape *s)
{
	static const uint64_t bound_ns[SOCKMIG_DRAIN_BUCKETS] = SOCKMIG_DRAIN_BUCKET_NS;
	const char *h = "sockmig_drain_duration_seconds";

	family_help(f, "sockmig_drains_total", "counter",
		    "Drains of members through libsockmig (drain, holder rotation, reload).");
	for (int i = 0; i < s->ngroups; i++)
		fprintf(f, "sockmig_drains_total{group=\"%s\",port=\"%s\"} %llu\n", s->names[i],
			s->ports[i], (unsigned long long)s->ring[i].head);
	family_help(f, h, "histogram",
		    "Duration of each drain: from the mark (no new SYN) to the listener's "
		    "shutdown, its queue migrated.");
	for (int i = 0; i < s->ngroups; i++) {
		const struct sockmig_event_ring *r = &s->ring[i];
		const char *n = s->names[i], *p = s->ports[i];

		for (int b = 0; b < SOCKMIG_DRAIN_BUCKETS; b++)
			fprintf(f, "%s_bucket{group=\"%s\",port=\"%s\",le=\"%g\"} %llu\n", h, n, p,
				(double)bound_ns[b] / 1e9, (unsigned long long)r->duration_le[b]);
		fprintf(f, "%s_bucket{group=\"%s\",port=\"%s\",le=\"+Inf\"} %llu\n", h, n, p,
			(unsigned long long)r->head);
		fprintf(f, "%s_sum{group=\"%s\",port=\"%s\"} %.9f\n", h, n, p,
			(double)r->duration_sum_ns / 1e9);
		fprintf(f, "%s_count{group=\"%s\",port=\"%s\"} %llu\n", h, n, p,
			(unsigned long long)r->head);
	}
}

/* What the program did with each datagram: every one is counted under one
 * outcome (quic_cid in mode quic-lb only). */
static void udp_datagrams(FILE *f, const struct udp_group *u, const char *port)
{
	const struct sockmig_udp_stats *st = &u->st;
	const struct {
		const char *outcome;
		uint64_t v;
	} o[] = {
		{"quic_cid", u->q.hits},	  {"flow_hit", st->flow_hits},
		{"new_flow", st->new_flows},	  {"fallback", st->fallbacks},
		{"expired", st->expired},	  {"stateless", st->stateless},
		{"kernel_hash", st->kernel_hash}, {"parse_failed", st->parse_failed},
	};

	for (size_t k = u->have_quic ? 0 : 1; k < sizeof(o) / sizeof(o[0]); k++)
		fprintf(f,
			"sockmig_udp_datagrams_total{group=\"%s\",port=\"%s\",outcome=\"%s\"} "
			"%llu\n",
			u->id.name, port, o[k].outcome, (unsigned long long)o[k].v);
}

/* One sample per readable UDP group, of the value @v picks. */
static void udp_family(FILE *f, const struct scrape *s, const char *name, const char *type,
		       const char *help, bool quic_only, uint64_t (*v)(const struct udp_group *u))
{
	family_help(f, name, type, help);
	for (int i = 0; i < s->nu; i++)
		if (s->us[i].readable && (!quic_only || s->us[i].have_quic))
			fprintf(f, "%s{group=\"%s\",port=\"%d\"} %llu\n", name, s->us[i].id.name,
				s->us[i].id.port, (unsigned long long)v(&s->us[i]));
}

static uint64_t v_working(const struct udp_group *u)
{
	return u->st.working_generation;
}
static uint64_t v_flow_max(const struct udp_group *u)
{
	return u->flow_max;
}
static uint64_t v_old_gen(const struct udp_group *u)
{
	return u->old_gen;
}
static uint64_t v_quic_new(const struct udp_group *u)
{
	return u->quic_new;
}
static uint64_t v_not_learned(const struct udp_group *u)
{
	return u->st.not_learned;
}
static uint64_t v_quic_stale(const struct udp_group *u)
{
	return u->q.stale;
}
static uint64_t v_quic_other(const struct udp_group *u)
{
	return u->q.other;
}

/* The UDP groups of this network namespace (sockmig_udp_group_open()):
 * what sockmig status shows of them. */
static void udp_metrics(FILE *f, const struct scrape *s)
{
	static const enum sockmig_role roles[] = {SOCKMIG_ROLE_ACTIVE, SOCKMIG_ROLE_DRAINING};
	struct sockmig_udp_snmp e;
	char port[8];

	family_help(f, "sockmig_udp_group_info", "gauge",
		    "A pinned UDP group of this network namespace and its mode.");
	for (int i = 0; i < s->nu; i++)
		fprintf(f, "sockmig_udp_group_info{group=\"%s\",port=\"%d\",mode=\"%s\"} 1\n",
			s->us[i].id.name, s->us[i].id.port,
			s->us[i].readable ? sockmig_udp_mode_str(s->us[i].mode) : "unknown");
	udp_family(f, s, "sockmig_udp_working_generation", "gauge",
		   "The generation that takes new flows.", false, v_working);
	family_help(f, "sockmig_udp_group_members", "gauge", "Live members, by role.");
	for (int i = 0; i < s->nu; i++)
		for (size_t r = 0; r < sizeof(roles) / sizeof(roles[0]); r++) {
			int n = 0;

			for (int j = 0; j < s->us[i].nmi; j++)
				n += s->us[i].mi[j].role == roles[r];
			if (s->us[i].readable)
				fprintf(f,
					"sockmig_udp_group_members{group=\"%s\",port=\"%d\","
					"role=\"%s\"} %d\n",
					s->us[i].id.name, s->us[i].id.port,
					sockmig_role_str(roles[r]), n);
		}
	family_help(f, "sockmig_udp_member_info", "gauge",
		    "A member: its role, generation and the pid that registered it.");
	for (int i = 0; i < s->nu; i++)
		for (int j = 0; s->us[i].readable && j < s->us[i].nmi; j++)
			fprintf(f,
				"sockmig_udp_member_info{group=\"%s\",port=\"%d\",member=\"%llu\","
				"role=\"%s\",generation=\"%u\",pid=\"%u\"} 1\n",
				s->us[i].id.name, s->us[i].id.port,
				(unsigned long long)s->us[i].mi[j].cookie,
				sockmig_role_str(s->us[i].mi[j].role), s->us[i].mi[j].generation,
				s->us[i].mi[j].pid);
	family_help(f, "sockmig_udp_flows", "gauge",
		    "Live flows (not idle past the timeout, their socket open), by the "
		    "generation that owns them.");
	for (int i = 0; i < s->nu; i++)
		for (int k = 0; s->us[i].readable && k < s->us[i].ngens; k++)
			fprintf(f,
				"sockmig_udp_flows{group=\"%s\",port=\"%d\",generation=\"%u\"} "
				"%llu\n",
				s->us[i].id.name, s->us[i].id.port, s->us[i].gens[k].gen,
				(unsigned long long)s->us[i].gens[k].flows);
	udp_family(f, s, "sockmig_udp_flow_capacity", "gauge",
		   "Live flows the group's flow table holds (flow_max): beyond it the least "
		   "recently seen are forgotten, and their next datagram is a new flow.",
		   false, v_flow_max);
	family_help(f, "sockmig_udp_idle_timeout_seconds", "gauge",
		    "A flow idle longer is a new flow at its next datagram, for the working "
		    "generation (+Inf: flows never expire by time).");
	for (int i = 0; i < s->nu; i++)
		if (s->us[i].readable && s->us[i].idle_ms == SOCKMIG_UDP_NO_EXPIRY)
			fprintf(f,
				"sockmig_udp_idle_timeout_seconds{group=\"%s\",port=\"%d\"} +Inf\n",
				s->us[i].id.name, s->us[i].id.port);
		else if (s->us[i].readable)
			fprintf(f,
				"sockmig_udp_idle_timeout_seconds{group=\"%s\",port=\"%d\"} "
				"%u.%03u\n",
				s->us[i].id.name, s->us[i].id.port, s->us[i].idle_ms / 1000,
				s->us[i].idle_ms % 1000);
	family_help(f, "sockmig_udp_datagrams_total", "counter",
		    "Datagrams the group's program chose a socket for, by how: quic_cid (the "
		    "server's connection ID), flow_hit (the flow's owner), new_flow, fallback "
		    "(the owner had closed), expired (idle past the timeout), stateless (not "
		    "learned), kernel_hash (no member selectable), parse_failed.");
	for (int i = 0; i < s->nu; i++)
		if (s->us[i].readable) {
			snprintf(port, sizeof(port), "%d", s->us[i].id.port);
			udp_datagrams(f, &s->us[i], port);
		}
	udp_family(f, s, "sockmig_udp_old_generation_datagrams_total", "counter",
		   "Datagrams of known flows or connection IDs delivered to their owner of a "
		   "generation that was not the working one.",
		   false, v_old_gen);
	udp_family(f, s, "sockmig_udp_quic_new_connections_total", "counter",
		   "New QUIC connections from the address and port of a flow an older "
		   "generation owned: to the working generation.",
		   false, v_quic_new);
	udp_family(f, s, "sockmig_udp_not_learned_total", "counter",
		   "New flows the flow table refused (delivered, not remembered).", false,
		   v_not_learned);
	udp_family(f, s, "sockmig_udp_quic_cid_stale_total", "counter",
		   "Mode quic-lb: connection IDs of the group whose member is gone (then "
		   "routed as a flow).",
		   true, v_quic_stale);
	udp_family(f, s, "sockmig_udp_quic_cid_other_total", "counter",
		   "Mode quic-lb: datagrams without a connection ID of the group (a client's "
		   "Initial; routed as a flow).",
		   true, v_quic_other);
	if (sockmig_udp_snmp_read(&e) == 0) {
		family_help(f, "sockmig_kernel_udp_rcvbuf_errors_total", "counter",
			    "Udp and Udp6 RcvbufErrors of this network namespace.");
		fprintf(f, "sockmig_kernel_udp_rcvbuf_errors_total %llu\n",
			(unsigned long long)e.rcvbuf_errors);
		family_help(f, "sockmig_kernel_udp_in_errors_total", "counter",
			    "Udp and Udp6 InErrors of this network namespace.");
		fprintf(f, "sockmig_kernel_udp_in_errors_total %llu\n",
			(unsigned long long)e.in_errors);
	}
}

static void write_metrics(FILE *f, const struct scrape *s)
{
	static const enum sockmig_role roles[] = {SOCKMIG_ROLE_ACTIVE, SOCKMIG_ROLE_DRAINING,
						  SOCKMIG_ROLE_HOLDER};
	struct sockmig_netstat ns;

	family_help(f, "sockmig_group_info", "gauge",
		    "A pinned group of this network namespace and its policy program.");
	for (int i = 0; i < s->ngroups; i++)
		fprintf(f, "sockmig_group_info{group=\"%s\",port=\"%s\",policy=\"%s\"} 1\n",
			s->names[i], s->ports[i], s->policy[i] ? s->policy[i] : "unknown");
	family_help(f, "sockmig_group_members", "gauge", "Registered members, by role.");
	for (int i = 0; i < s->ngroups; i++)
		for (size_t r = 0; r < sizeof(roles) / sizeof(roles[0]); r++) {
			int n = 0;

			for (int j = 0; j < s->nmi[i]; j++)
				n += s->mi[i][j].role == roles[r];
			fprintf(f,
				"sockmig_group_members{group=\"%s\",port=\"%s\",role=\"%s\"} %d\n",
				s->names[i], s->ports[i], sockmig_role_str(roles[r]), n);
		}
	family_help(f, "sockmig_member_info", "gauge",
		    "A member: its role and the pid that registered it.");
	for (int i = 0; i < s->ngroups; i++)
		for (int j = 0; j < s->nmi[i]; j++)
			fprintf(f,
				"sockmig_member_info{group=\"%s\",port=\"%s\",member=\"%llu\","
				"role=\"%s\",pid=\"%u\"} 1\n",
				s->names[i], s->ports[i], (unsigned long long)s->mi[i][j].cookie,
				sockmig_role_str(s->mi[i][j].role), s->mi[i][j].pid);
	member_family(f, s, "sockmig_member_generation", "gauge", "The member's generation.",
		      v_generation);
	member_family(f, s, "sockmig_member_weight", "gauge", "The member's weight.", v_weight);
	member_family(f, s, "sockmig_member_syn_steered_total", "counter",
		      "New connections (SYNs) the policy sent to this member.", v_steered);
	migrated_family(f, s, true);
	migrated_family(f, s, false);
	member_family(f, s, "sockmig_member_cancelled_total", "counter",
		      "Migrations away from this member cancelled: every target had other "
		      "listener settings (the client was reset).",
		      v_cancelled);
	member_family(f, s, "sockmig_member_deferred_total", "counter",
		      "Migrations away from this member left to the kernel's hash: no "
		      "registered target.",
		      v_deferred);
	member_family(f, s, "sockmig_member_kicked_total", "counter",
		      "Wake-up connections sent to this member (kernels without the wake-up "
		      "of migrated children).",
		      v_kicked);
	drain_families(f, s);
	if (sockmig_netstat_read(&ns) == 0) {
		const struct {
			const char *name, *help;
			uint64_t v;
		} k[] = {
			{"sockmig_kernel_tcp_migrate_req_success_total",
			 "TcpExt TCPMigrateReqSuccess of this network namespace.",
			 ns.migrate_success},
			{"sockmig_kernel_tcp_migrate_req_failure_total",
			 "TcpExt TCPMigrateReqFailure of this network namespace.",
			 ns.migrate_failure},
			{"sockmig_kernel_tcp_listen_drops_total",
			 "TcpExt ListenDrops of this network namespace.", ns.listen_drops},
			{"sockmig_kernel_tcp_listen_overflows_total",
			 "TcpExt ListenOverflows of this network namespace.", ns.listen_overflows},
		};

		for (size_t i = 0; i < sizeof(k) / sizeof(k[0]); i++) {
			family_help(f, k[i].name, "counter", k[i].help);
			fprintf(f, "%s %llu\n", k[i].name, (unsigned long long)k[i].v);
		}
	}
	udp_metrics(f, s);
}

/* The whole exposition in a memory buffer: @*len bytes at the result. */
static char *render(int port, size_t *len)
{
	struct scrape s;
	char *buf = NULL;
	FILE *f;
	int err;

	err = scrape_read(&s, port);
	if (err < 0) {
		cli_error("metrics: cannot list the pinned groups: %s", strerror(-err));
		return NULL;
	}
	f = open_memstream(&buf, len);
	if (f) {
		write_metrics(f, &s);
		fclose(f);
	}
	scrape_free(&s);
	return buf;
}

/* Write @path through a temporary file and rename(), so that a reader
 * (node_exporter) never sees half of it. */
static int write_textfile(const char *path, int port)
{
	char tmp[4096];
	size_t len;
	char *buf = render(port, &len);
	FILE *f;
	int ok;

	if (!buf)
		return -1;
	snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid());
	f = fopen(tmp, "w");
	if (!f) {
		cli_error("metrics: %s: %s", tmp, strerror(errno));
		free(buf);
		return -1;
	}
	ok = fwrite(buf, 1, len, f) == len;
	ok = (fclose(f) == 0) && ok;
	free(buf);
	if (!ok || chmod(tmp, 0644) < 0 || rename(tmp, path) < 0) {
		cli_error("metrics: %s: %s", path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

static bool parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon = strrchr(s, ':');
	uint64_t port;
	size_t hl;

	memset(ss, 0, sizeof(*ss));
	if (!colon || colon == s)
		goto bad;
	hl = (size_t)(colon - s);
	if (hl >= sizeof(host))
		goto bad;
	memcpy(host, s, hl);
	host[hl] = '\0';
	if (!parse_u64("--listen port", colon + 1, 1, 65535, &port))
		return false;
	if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;

		host[hl - 1] = '\0';
		if (inet_pton(AF_INET6, host + 1, &a->sin6_addr) != 1)
			goto bad;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		*len = sizeof(*a);
		return true;
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;

		if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
			goto bad;
		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		*len = sizeof(*a);
		return true;
	}
bad:
	cli_error("metrics: --listen '%s': not ADDRESS:PORT (127.0.0.1:9464, [::1]:9464)", s);
	return false;
}

/* Read the request head (bounded in size and time) and answer it. */
static void serve_one(int c, int port)
{
	static const char not_found[] = "HTTP/1.0 404 Not Found\r\nContent-Type: text/plain\r\n"
					"Connection: close\r\n\r\nonly /metrics here\n";
	char req[4096], head[256];
	size_t have = 0, len = 0;
	struct pollfd p = {.fd = c, .events = POLLIN};
	char *body;

	req[0] = '\0';
	while (have < sizeof(req) - 1 && !strstr(req, "\r\n\r\n")) {
		ssize_t n;

		if (poll(&p, 1, REQUEST_TIMEOUT_MS) != 1)
			return;
		n = read(c, req + have, sizeof(req) - 1 - have);
		if (n <= 0)
			return;
		have += (size_t)n;
		req[have] = '\0';
	}
	if (strncmp(req, "GET /metrics ", 13) != 0 && strncmp(req, "GET /metrics?", 13) != 0) {
		if (write(c, not_found, sizeof(not_found) - 1) < 0)
			return;
		return;
	}
	body = render(port, &len);
	if (!body)
		return;
	snprintf(head, sizeof(head),
		 "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
		 "Content-Length: %zu\r\nConnection: close\r\n\r\n",
		 len);
	if (write(c, head, strlen(head)) >= 0)
		for (size_t off = 0; off < len;) {
			ssize_t n = write(c, body + off, len - off);

			if (n <= 0)
				break;
			off += (size_t)n;
		}
	free(body);
}

static int serve(const struct sockaddr_storage *ss, socklen_t len, int port)
{
	int one = 1, s = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (s < 0 || setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(s, (const struct sockaddr *)ss, len) < 0 || listen(s, 64) < 0) {
		cli_error("metrics: --listen: %s", strerror(errno));
		if (s >= 0)
			close(s);
		return 1;
	}
	while (!stop) {
		struct pollfd p = {.fd = s, .events = POLLIN};
		int c;

		if (poll(&p, 1, 500) != 1)
			continue;
		c = accept4(s, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			continue;
		serve_one(c, port);
		close(c);
	}
	close(s);
	return 0;
}

static void metrics_usage(FILE *f)
{
	fprintf(f, "Usage: sockmig metrics [--port P] [--listen ADDR:PORT | --textfile FILE "
		   "[--interval MS]]\n"
		   "  -p, --port P           only the groups of port P\n"
		   "  -l, --listen ADDR:PORT serve GET /metrics over HTTP there (until SIGTERM)\n"
		   "  -f, --textfile FILE    write FILE (atomically) for node_exporter's "
		   "textfile collector\n"
		   "  -i, --interval MS      with --textfile: write again every MS ms (until "
		   "SIGTERM)\n"
		   "  -h, --help             this text\n"
		   "Without --listen or --textfile: once on stdout.\n");
}

int do_metrics(int argc, char **argv)
{
	const char *listen_at = NULL, *textfile = NULL;
	struct sockaddr_storage ss;
	socklen_t sslen = 0;
	uint64_t interval = 0;
	struct sigaction sa = {.sa_handler = on_stop};
	int n, port = 0;
	const struct cli_opt opts[] = {
		{"port", 'p', CLI_PORT, &port},
		{"listen", 'l', CLI_STR, &listen_at},
		{"textfile", 'f', CLI_STR, &textfile},
		{"interval", 'i', CLI_U64, &interval, 100, 3600000},
		{0},
	};

	n = cli_parse("metrics", argc, argv, opts, 0, metrics_usage);
	if (n == 0)
		return 0;
	if (n < 0)
		goto usage;
	if (listen_at && textfile) {
		cli_error("metrics: --listen and --textfile exclude each other");
		goto usage;
	}
	if (interval && !textfile) {
		cli_error("metrics: --interval goes with --textfile");
		goto usage;
	}
	if (listen_at && !parse_listen(listen_at, &ss, &sslen))
		goto usage;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (listen_at)
		return serve(&ss, sslen, port);
	if (textfile) {
		do {
			struct timespec ts = {(time_t)(interval / 1000),
					      (long)(interval % 1000) * 1000000L};

			if (write_textfile(textfile, port) < 0)
				return 1;
			if (interval)
				nanosleep(&ts, NULL);
		} while (interval && !stop);
		return 0;
	} else {
		size_t len;
		char *buf = render(port, &len);

		if (!buf)
			return 1;
		fwrite(buf, 1, len, stdout);
		free(buf);
		return 0;
	}
usage:
	return 2; /* one Error: line, as every command's */
}
