// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmig status: its output, as JSON (-j) or as a table like ss's, a
 * heading line per group and a line per member (status.c gathers).
 */
#include <arpa/inet.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "status.h"

static void addr_str(const struct sm_listener *l, char *buf, size_t len)
{
	if (!inet_ntop(l->family, &l->addr, buf, (socklen_t)len))
		snprintf(buf, len, "?");
}

/* "127.0.0.1:80", "[::1]:80", with "%dev" for a listener bound to a device. */
static void local_str(const struct sm_listener *l, bool dev, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN], ifname[IF_NAMESIZE + 1] = "";

	addr_str(l, host, sizeof(host));
	if (dev && l->ifindex) {
		ifname[0] = '%';
		if (!if_indextoname(l->ifindex, ifname + 1))
			snprintf(ifname, sizeof(ifname), "%%%u", l->ifindex);
	}
	snprintf(buf, len, l->family == AF_INET6 ? "[%s%s]:%d" : "%s%s:%d", host, ifname, l->port);
}

static void comm_of(pid_t pid, char *buf, size_t len)
{
	char path[64];
	size_t n;
	FILE *f;

	snprintf(buf, len, "?");
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return;
	if (fgets(buf, (int)len, f)) {
		n = strcspn(buf, "\n");
		buf[n] = '\0';
	}
	fclose(f);
}

static const struct sockmig_member_info *member_of(const struct group *gr, uint64_t cookie)
{
	for (int i = 0; i < gr->nmi; i++)
		if (gr->mi[i].cookie == cookie)
			return &gr->mi[i];
	return NULL;
}

/* Registered members whose listener is not in the dump. */
static int unmatched(const struct group *gr)
{
	int n = 0;

	for (int i = 0; i < gr->nmi; i++) {
		bool found = false;

		for (int j = 0; j < gr->count && !found; j++)
			found = gr->l[j].cookie == gr->mi[i].cookie;
		n += !found;
	}
	return n;
}

static uint64_t sum_kinds(const uint64_t *v)
{
	uint64_t s = 0;

	for (int k = 0; k < SOCKMIG_KIND_MAX; k++)
		s += v[k];
	return s;
}

/* ---- JSON ---------------------------------------------------------------- */

static void jw_tri(const char *key, int v)
{
	if (v == UNKNOWN)
		jw_null(key);
	else
		jw_bool(key, v == 1);
}

static void json_sockmig(const struct sockmig_member_info *m)
{
	const struct sockmig_counters *c = &m->counters;

	jw_open("sockmig", '{');
	jw_u64("slot", m->slot);
	jw_str("role", sockmig_role_str(m->role));
	jw_u64("generation", m->generation);
	jw_u64("weight", m->weight);
	jw_u64("pid", m->pid);
	jw_u64("steered", c->steered);
	jw_u64("migrated_in", sum_kinds(c->migrated_in));
	jw_u64("migrated_out", sum_kinds(c->migrated_out));
	jw_u64("cancelled", c->cancel_mismatch);
	jw_u64("deferred", c->deferred);
	jw_u64("kicked", c->kicked);
	jw_open("migrated_in_by_kind", '{');
	for (int k = 0; k < SOCKMIG_KIND_MAX; k++)
		jw_u64(sockmig_kind_str((enum sockmig_kind)k), c->migrated_in[k]);
	jw_close('}');
	jw_open("migrated_out_by_kind", '{');
	for (int k = 0; k < SOCKMIG_KIND_MAX; k++)
		jw_u64(sockmig_kind_str((enum sockmig_kind)k), c->migrated_out[k]);
	jw_close('}');
	jw_close('}');
}

static void json_member(const struct group *gr, const struct sm_listener *l)
{
	const struct sockmig_member_info *m = member_of(gr, l->cookie);
	char comm[64];

	jw_open(NULL, '{');
	jw_u64("cookie", l->cookie);
	jw_u64("inode", l->inode);
	jw_u64("uid", l->uid);
	jw_u64("queue", l->queue);
	jw_u64("backlog", l->backlog);
	jw_u64("ifindex", l->ifindex);
	jw_open("owners", '[');
	for (int i = 0; i < l->nowners; i++) {
		comm_of(l->owners[i].pid, comm, sizeof(comm));
		jw_open(NULL, '{');
		jw_i64("pid", l->owners[i].pid);
		jw_i64("fd", l->owners[i].fd);
		jw_str("comm", comm);
		jw_close('}');
	}
	jw_close(']');
	/* 0 with owners hidden: processes of other users */
	jw_i64("owners_total", l->owners_total);
	if (m)
		json_sockmig(m);
	else
		jw_null("sockmig");
	jw_close('}');
}

static void json_group(const struct group *gr, const struct netns_info *ns)
{
	const struct sm_listener *l = &gr->l[0];
	char host[INET6_ADDRSTRLEN], local[INET6_ADDRSTRLEN + 32];

	addr_str(l, host, sizeof(host));
	local_str(l, false, local, sizeof(local));
	jw_open(NULL, '{');
	jw_str("family", l->family == AF_INET ? "tcp4" : "tcp6");
	jw_str("addr", host);
	jw_i64("port", l->port);
	jw_str("local", local);
	jw_u64("netns", ns->ino);
	jw_i64("nmembers", gr->count);
	jw_tri("reuseport", gr->reuseport);
	jw_str("sockmig_group", gr->name);
	if (gr->policy)
		jw_str("policy", gr->policy);
	else
		jw_null("policy");
	jw_tri("pinned", gr->pinned);
	if (!ns->state)
		jw_str("sockmig_state", ns->state_msg);
	else if (gr->error[0])
		jw_str("sockmig_state", gr->error);
	else
		jw_str("sockmig_state", "readable");
	jw_i64("registered_without_listener", unmatched(gr));
	if (gr->have_lease && gr->lease.set) {
		jw_open("lease", '{');
		jw_bool("expired", gr->lease.expired);
		jw_u64("left_ms", gr->lease.left_ms);
		jw_u64("syn_passed", gr->lease.syn_passed);
		jw_close('}');
	} else {
		jw_null("lease");
	}
	if (ns->probed) {
		jw_open("kernel", '{');
		jw_str("mode", sockmig_mode_str(ns->probe.mode));
		jw_tristate("wakeup", ns->probe.migrate_wakeup);
		jw_str("reason", ns->probe.reason);
		jw_close('}');
	} else {
		jw_null("kernel");
	}
	if (ns->migrate_req == UNKNOWN)
		jw_null("tcp_migrate_req");
	else
		jw_i64("tcp_migrate_req", ns->migrate_req);
	if (ns->have_netstat) {
		jw_open("netstat", '{');
		jw_u64("TCPMigrateReqSuccess", ns->ns.migrate_success);
		jw_u64("TCPMigrateReqFailure", ns->ns.migrate_failure);
		jw_close('}');
	} else {
		jw_null("netstat");
	}
	jw_open("members", '[');
	for (int i = 0; i < gr->count; i++)
		json_member(gr, &gr->l[i]);
	jw_close(']');
	jw_close('}');
}

/* ---- columns --------------------------------------------------------------- */

enum {
	C_RECVQ,
	C_SENDQ,
	C_LOCAL,
	C_COOKIE,
	C_ROLE,
	C_GEN,
	C_WEIGHT,
	C_STEERED,
	C_MIGIN,
	C_MIGOUT,
	C_CANCEL,
	C_PROCESS,
	NCOL
};

static const char *const col_name[NCOL] = {
	"Recv-Q", "Send-Q",  "Local Address:Port",
	"Cookie", "Role",    "Gen",
	"Weight", "Steered", "MigIn",
	"MigOut", "Cancel",  "Process",
};

/* A line of the table: a group heading (text) or a member (cells). */
struct line {
	char *text;
	char *cell[NCOL];
};

struct table {
	struct line *lines;
	int n, cap;
	size_t width[NCOL];
};

static struct line *table_add(struct table *t)
{
	if (t->n == t->cap) {
		int ncap = t->cap ? t->cap * 2 : 16;
		struct line *nl = realloc(t->lines, (size_t)ncap * sizeof(*nl));

		if (!nl)
			return NULL;
		t->lines = nl;
		t->cap = ncap;
	}
	memset(&t->lines[t->n], 0, sizeof(t->lines[0]));
	return &t->lines[t->n++];
}

static char *fmt_u64(uint64_t v)
{
	char *s = NULL;

	if (asprintf(&s, "%llu", (unsigned long long)v) < 0)
		return NULL;
	return s;
}

/* "nginx(pid=12,fd=6),nginx(pid=13,fd=6)", "?" when none is visible. */
static char *owners_str(const struct sm_listener *l)
{
	size_t cap = 64 + (size_t)l->nowners * 64, len = 0;
	char *s = malloc(cap), comm[64];

	if (!s)
		return NULL;
	s[0] = '\0';
	for (int i = 0; i < l->nowners; i++) {
		comm_of(l->owners[i].pid, comm, sizeof(comm));
		len += (size_t)snprintf(s + len, cap - len, "%s%s(pid=%d,fd=%d)", i ? "," : "",
					comm, (int)l->owners[i].pid, l->owners[i].fd);
	}
	if (l->owners_total > l->nowners)
		snprintf(s + len, cap - len, ",+%d more", l->owners_total - l->nowners);
	if (!l->nowners)
		snprintf(s, cap, "?");
	return s;
}

static void table_member(struct table *t, const struct group *gr, const struct sm_listener *l,
			 const struct netns_info *ns)
{
	const struct sockmig_member_info *m = member_of(gr, l->cookie);
	struct line *ln = table_add(t);
	char local[INET6_ADDRSTRLEN + IF_NAMESIZE + 32];
	/* not registered: "-"; sockmig state unreadable: "?" */
	const char *none = ns->state && !gr->error[0] ? "-" : "?";

	if (!ln)
		return;
	local_str(l, true, local, sizeof(local));
	ln->cell[C_RECVQ] = fmt_u64(l->queue);
	ln->cell[C_SENDQ] = fmt_u64(l->backlog);
	ln->cell[C_LOCAL] = strdup(local);
	ln->cell[C_COOKIE] = fmt_u64(l->cookie);
	ln->cell[C_PROCESS] = owners_str(l);
	if (m) {
		ln->cell[C_ROLE] = strdup(sockmig_role_str(m->role));
		ln->cell[C_GEN] = fmt_u64(m->generation);
		ln->cell[C_WEIGHT] = fmt_u64(m->weight);
		ln->cell[C_STEERED] = fmt_u64(m->counters.steered);
		ln->cell[C_MIGIN] = fmt_u64(sum_kinds(m->counters.migrated_in));
		ln->cell[C_MIGOUT] = fmt_u64(sum_kinds(m->counters.migrated_out));
		ln->cell[C_CANCEL] = fmt_u64(m->counters.cancel_mismatch);
	} else {
		for (int c = C_ROLE; c <= C_CANCEL; c++)
			ln->cell[c] = strdup(none);
	}
}

static void table_group(struct table *t, const struct group *gr, const struct netns_info *ns)
{
	char local[INET6_ADDRSTRLEN + 32], state[256], kernel[128], migreq[32], nstat[96];
	struct line *ln = table_add(t);
	int stale = unmatched(gr);

	if (!ln)
		return;
	local_str(&gr->l[0], false, local, sizeof(local));
	if (!ns->state)
		snprintf(state, sizeof(state), "sockmig state: %s", ns->state_msg);
	else if (gr->pinned != 1)
		snprintf(state, sizeof(state), "no sockmig group");
	else if (gr->error[0])
		snprintf(state, sizeof(state), "sockmig group %s: %s", gr->name, gr->error);
	else if (stale)
		snprintf(state, sizeof(state),
			 "sockmig group %s (%s policy, %d registered, %d without listener)",
			 gr->name, gr->policy ? gr->policy : "?", gr->nmi, stale);
	else
		snprintf(state, sizeof(state), "sockmig group %s (%s policy, %d registered)",
			 gr->name, gr->policy ? gr->policy : "?", gr->nmi);
	if (gr->have_lease && gr->lease.expired) {
		size_t len = strlen(state);

		snprintf(state + len, sizeof(state) - len,
			 ", attach's lease expired: new SYNs by the kernel's hash (%llu so far)",
			 (unsigned long long)gr->lease.syn_passed);
	}
	if (ns->probed)
		snprintf(kernel, sizeof(kernel), "kernel %s, wake-up %s",
			 sockmig_mode_str(ns->probe.mode), tristate_str(ns->probe.migrate_wakeup));
	else
		snprintf(kernel, sizeof(kernel), "kernel not probed (needs root)");
	if (ns->migrate_req == UNKNOWN)
		snprintf(migreq, sizeof(migreq), "tcp_migrate_req absent");
	else
		snprintf(migreq, sizeof(migreq), "tcp_migrate_req=%d", ns->migrate_req);
	if (ns->have_netstat)
		snprintf(nstat, sizeof(nstat),
			 "TCPMigrateReqSuccess=%llu TCPMigrateReqFailure=%llu",
			 (unsigned long long)ns->ns.migrate_success,
			 (unsigned long long)ns->ns.migrate_failure);
	else
		snprintf(nstat, sizeof(nstat), "TcpExt not readable");
	if (asprintf(&ln->text,
		     "%s %s netns %llu: %d member%s, SO_REUSEPORT %s, %s\n"
		     "  %s; %s; %s",
		     gr->l[0].family == AF_INET ? "tcp4" : "tcp6", local,
		     (unsigned long long)ns->ino, gr->count, gr->count == 1 ? "" : "s",
		     gr->reuseport == 1	  ? "yes"
		     : gr->reuseport == 0 ? "no"
					  : "unknown",
		     state, kernel, migreq, nstat) < 0)
		ln->text = NULL;
}

/* ---- UDP groups ------------------------------------------------------------ */

/* "udp4 127.0.0.1:443 netns N: 2 members, sockmig UDP group NAME (mode flow,
 * working generation 2, idle timeout 30s, flow table 65536)", then the generations and the counters. */
static void table_udp_group(struct table *t, const struct udp_group *u)
{
	struct line *ln = table_add(t);
	const struct sockmig_udp_stats *st = &u->st;
	char local[INET6_ADDRSTRLEN + 32], *gens = NULL, quic[96] = "", idle[24];
	size_t glen = 0;
	FILE *f;

	if (!ln)
		return;
	status_udp_local(u, local, sizeof(local));
	if (!u->readable) {
		if (asprintf(&ln->text, "%s %s netns %llu: sockmig UDP group %s: %s",
			     u->id.family == AF_INET ? "udp4" : "udp6", local,
			     (unsigned long long)u->id.netns, u->id.name, u->error) < 0)
			ln->text = NULL;
		return;
	}
	if (u->idle_ms == SOCKMIG_UDP_NO_EXPIRY)
		snprintf(idle, sizeof(idle), "none");
	else if (u->idle_ms % 1000 == 0)
		snprintf(idle, sizeof(idle), "%us", u->idle_ms / 1000);
	else
		snprintf(idle, sizeof(idle), "%ums", u->idle_ms);
	f = open_memstream(&gens, &glen);
	if (!f)
		return;
	for (int i = 0; i < u->ngens; i++)
		fprintf(f, "%sgeneration %u: %d member%s, %llu flow%s", i ? "; " : "",
			u->gens[i].gen, u->gens[i].members, u->gens[i].members == 1 ? "" : "s",
			(unsigned long long)u->gens[i].flows, u->gens[i].flows == 1 ? "" : "s");
	if (!u->ngens)
		fprintf(f, "no member, no flow");
	fclose(f);
	if (u->have_quic)
		snprintf(quic, sizeof(quic), " quic_hits=%llu quic_stale=%llu quic_other=%llu",
			 (unsigned long long)u->q.hits, (unsigned long long)u->q.stale,
			 (unsigned long long)u->q.other);
	if (asprintf(&ln->text,
		     "%s %s netns %llu: %d member%s, sockmig UDP group %s (mode %s, working "
		     "generation %u, idle timeout %s, flow table %u)\n"
		     "  %s\n"
		     "  new_flows=%llu flow_hits=%llu fallbacks=%llu expired=%llu stateless=%llu "
		     "kernel_hash=%llu not_learned=%llu parse_failed=%llu old_generation=%llu "
		     "quic_new_connections=%llu%s",
		     u->id.family == AF_INET ? "udp4" : "udp6", local,
		     (unsigned long long)u->id.netns, u->nmi, u->nmi == 1 ? "" : "s", u->id.name,
		     sockmig_udp_mode_str(u->mode), st->working_generation, idle, u->flow_max, gens,
		     (unsigned long long)st->new_flows, (unsigned long long)st->flow_hits,
		     (unsigned long long)st->fallbacks, (unsigned long long)st->expired,
		     (unsigned long long)st->stateless, (unsigned long long)st->kernel_hash,
		     (unsigned long long)st->not_learned, (unsigned long long)st->parse_failed,
		     (unsigned long long)u->old_gen, (unsigned long long)u->quic_new, quic) < 0)
		ln->text = NULL;
	free(gens);
}

/* A member row: queues and the TCP policy's columns "-", the process as
 * comm(pid=N,slot=S) of the pid it was registered with. */
static void table_udp_member(struct table *t, const struct udp_group *u,
			     const struct sockmig_udp_member_info *m)
{
	struct line *ln = table_add(t);
	char local[INET6_ADDRSTRLEN + 32], comm[64];

	if (!ln)
		return;
	status_udp_local(u, local, sizeof(local));
	comm_of((pid_t)m->pid, comm, sizeof(comm));
	for (int c = 0; c < NCOL; c++)
		ln->cell[c] = strdup("-");
	free(ln->cell[C_LOCAL]);
	ln->cell[C_LOCAL] = strdup(local);
	free(ln->cell[C_COOKIE]);
	ln->cell[C_COOKIE] = fmt_u64(m->cookie);
	free(ln->cell[C_ROLE]);
	ln->cell[C_ROLE] = strdup(sockmig_role_str(m->role));
	free(ln->cell[C_GEN]);
	ln->cell[C_GEN] = fmt_u64(m->generation);
	free(ln->cell[C_PROCESS]);
	if (asprintf(&ln->cell[C_PROCESS], "%s(pid=%u,slot=%u)", comm, m->pid, m->slot) < 0)
		ln->cell[C_PROCESS] = NULL;
}

/* The last column is not padded. */
static void print_cell(int c, size_t width, const char *s)
{
	if (c == NCOL - 1)
		printf("%s\n", s);
	else
		printf("%-*s ", (int)width, s);
}

static void table_print(struct table *t)
{
	for (int c = 0; c < NCOL; c++)
		t->width[c] = strlen(col_name[c]);
	for (int i = 0; i < t->n; i++)
		for (int c = 0; c < NCOL; c++)
			if (t->lines[i].cell[c] && strlen(t->lines[i].cell[c]) > t->width[c])
				t->width[c] = strlen(t->lines[i].cell[c]);
	for (int c = 0; c < NCOL; c++)
		print_cell(c, t->width[c], col_name[c]);
	for (int i = 0; i < t->n; i++) {
		const struct line *ln = &t->lines[i];

		if (!ln->cell[C_LOCAL]) {
			if (ln->text)
				printf("%s\n", ln->text);
			continue;
		}
		for (int c = 0; c < NCOL; c++) {
			print_cell(c, t->width[c], ln->cell[c] ? ln->cell[c] : "?");
		}
	}
}

static void table_free(struct table *t)
{
	for (int i = 0; i < t->n; i++) {
		free(t->lines[i].text);
		for (int c = 0; c < NCOL; c++)
			free(t->lines[i].cell[c]);
	}
	free(t->lines);
}

void status_json(const struct group *gs, int ng, const struct netns_info *ns,
		 const struct udp_group *us, int nu)
{
	jw_open(NULL, '[');
	for (int i = 0; i < ng; i++)
		if (gs[i].show)
			json_group(&gs[i], ns);
	status_udp_json(us, nu);
	jw_close(']');
	jw_end();
}

void status_table(const struct group *gs, int ng, const struct netns_info *ns,
		  const struct udp_group *us, int nu)
{
	struct table t = {0};

	for (int i = 0; i < ng; i++) {
		if (!gs[i].show)
			continue;
		table_group(&t, &gs[i], ns);
		for (int j = 0; j < gs[i].count; j++)
			table_member(&t, &gs[i], &gs[i].l[j], ns);
	}
	for (int i = 0; i < nu; i++) {
		table_udp_group(&t, &us[i]);
		for (int j = 0; j < us[i].nmi; j++)
			table_udp_member(&t, &us[i], &us[i].mi[j]);
	}
	table_print(&t);
	table_free(&t);
}
