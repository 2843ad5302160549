/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Helpers of tests/test_run_udp.c (every name here starts with ru_): a
 * server under `sockmig run --proto ...` on the UDP rig's port UR_PORT,
 * the rig's clients (tests/udp_rig.h), and the judge of its answers.
 *
 * The servers answer each datagram with their pid. A flow's owner is the
 * process that answered its first datagram. An answer from another
 * process is a misroute when the owner's UDP socket on the port is still
 * open, and still a member of the port's UDP group (when the port has
 * one), after that answer came (neither comes back: it was so when the
 * datagram was routed); otherwise the owner had closed it, or it was
 * retired (sockmig run at --grace: out of the group before its close),
 * and the flow went on to the working generation, which owns it from then
 * on (a hand-over). An unanswered datagram is one lost in the queue of an
 * owner that closed (or retired) its socket since (what a close loses),
 * or not.
 */
#ifndef SOCKMIG_TESTS_RUN_UDP_RIG_H
#define SOCKMIG_TESTS_RUN_UDP_RIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "itest.h"
#include "udp_rig.h"

#define RU_PORT_S "34600" /* UR_PORT */

struct ru_judge {
	int owner[UR_MAX_FLOWS]; /* pid, 0 before the first answer */
	long misrouted, handovers, rounds;
	/* unanswered: the flow's owner had closed (or retired) its socket
	 * since (its queue is lost at the close), or not */
	long lost_at_close, lost_open;
	/* per round: the owners' socket state, looked up once */
	int npid;
	struct {
		int pid;
		bool open;
	} seen[32];
};

/* One round of flows [0, @n), judged into @j. false: the round failed. */
bool ru_round(struct ur_rig *r, struct ru_judge *j, int n, uint32_t seq);
/* The case's directory, tools, and tests/servers/@server copied there as
 * @bin; false: skip. */
bool ru_setup(struct ienv *e, const char *server, char *bin, size_t len);
/* Remove the port's UDP groups if any is left (run removes them): their
 * number. */
int ru_groups_left(void);
/* Stop run, the clients (@clients: started), what is left, the directory. */
void ru_teardown(struct ienv *e, pid_t run, struct ur_rig *r, bool clients);
/* Rounds of flows [0, @nflows) until @what appears @n times in run.log
 * (at most @ms): the load goes on meanwhile. */
bool ru_rounds_until(struct ienv *e, struct ur_rig *r, struct ru_judge *j, int nflows,
		     uint32_t *seq, const char *what, int n, int ms);
/* The rig's clients, fds for @flows of them. */
bool ru_clients(struct ur_rig *r, int flows);
/* `sockmig run --port UR_PORT @extra... -- @cmd...` with its output in
 * dir/run.log. */
pid_t ru_start_run(struct ienv *e, char *const extra[], char *const cmd[]);
/* Every UDP report line of run.log says UdpRcvbufErrors +0. */
bool ru_no_rcvbuf_errors(struct ienv *e);
/* The first line of dir/@log that contains @what into @line. */
bool ru_log_line(const struct ienv *e, const char *log, const char *what, char *line, size_t len);
/* Flows of [from, to) answered first by @pid. */
int ru_first_by(const struct ur_rig *r, int from, int to, int pid);
/* @pid has a live member in the port's UDP groups (or the port has none). */
bool ru_in_group(int pid);
/* The pid of a live member of the port's UDP group other than @not, or 0. */
int ru_other_member(int not );

#endif
