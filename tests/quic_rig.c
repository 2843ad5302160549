// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The QUIC-like rig of test_udp_quic.c and test_udp_quic_enc.c (quic_rig.h):
 * server sockets, datagrams with a trailer, clients that rebind, and the
 * rebinding run the two files' cases share.
 */
#include <arpa/inet.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "quic_rig.h"
#include "udp_rig.h"

bool qs_enc_kernel(void)
{
	return libbpf_probe_bpf_helper(BPF_PROG_TYPE_SK_REUSEPORT, BPF_FUNC_ktime_get_coarse_ns,
				       NULL) == 1;
}

int qs_open(struct qs *q, const struct sockmig_udp_group_opts *go)
{
	memset(q, 0, sizeof(*q));
	for (int i = 0; i < QR_MAX; i++)
		q->pfd[i].fd = -1;
	q->drops0 = ur_backlog_drops();
	q->addr.sin_family = AF_INET;
	q->addr.sin_port = htons(UR_PORT);
	q->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (go) {
		q->g = sockmig_udp_group_open((struct sockaddr *)&q->addr, sizeof(q->addr), go);
		if (!q->g) {
			printf("udp_group_open: %s\n", sockmig_last_error());
			return -1;
		}
	}
	return ur_enough_fds(QR_MAX + 64);
}

int qs_add(struct qs *q, uint32_t gen)
{
	int one = 1, buf = 4 << 20, fd;

	if (q->n >= QR_MAX)
		return -1;
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof(buf)) < 0 ||
	    bind(fd, (struct sockaddr *)&q->addr, sizeof(q->addr)) < 0) {
		printf("server socket: %s\n", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	q->pfd[q->n].fd = fd;
	q->pfd[q->n].events = POLLIN;
	q->gen[q->n] = gen;
	if (q->g) {
		SOCKMIG_OPTS(sockmig_udp_member_opts, mo, .generation = gen);

		if (sockmig_udp_member_add(q->g, fd, &mo) < 0) {
			printf("member_add: %s\n", sockmig_last_error());
			return -1;
		}
	}
	return q->n++;
}

void qs_close(struct qs *q, int k)
{
	close(q->pfd[k].fd);
	q->pfd[k].fd = -1;
}

void qs_stop(struct qs *q)
{
	for (int i = 0; i < q->n; i++)
		if (q->pfd[i].fd >= 0)
			close(q->pfd[i].fd);
	if (q->g) {
		sockmig_udp_group_destroy(q->g);
		sockmig_udp_group_close(q->g);
	}
}

static size_t trailer(uint8_t *b, size_t at, uint32_t flow, uint32_t seq)
{
	memcpy(b + at, &flow, 4);
	memcpy(b + at + 4, &seq, 4);
	return at + QR_TRAILER;
}

size_t qr_short(uint8_t *b, const uint8_t *cid, size_t cl, uint32_t flow, uint32_t seq)
{
	b[0] = 0x40; /* header form 0, fixed bit */
	memcpy(b + 1, cid, cl);
	memset(b + 1 + cl, 0x5a, 24); /* packet number and payload */
	return trailer(b, 1 + cl + 24, flow, seq);
}

size_t qr_long(uint8_t *b, int type, const uint8_t *dcid, size_t dl, size_t size, uint32_t flow,
	       uint32_t seq)
{
	static const uint8_t scid[8] = {0xc1, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1};

	return qr_long_scid(b, type, dcid, dl, scid, sizeof(scid), size, flow, seq);
}

size_t qr_long_scid(uint8_t *b, int type, const uint8_t *dcid, size_t dl, const uint8_t *scid,
		    size_t sl, size_t size, uint32_t flow, uint32_t seq)
{
	size_t n = 0;

	b[n++] = (uint8_t)(0xc0 | type << 4);
	b[n++] = 0, b[n++] = 0, b[n++] = 0, b[n++] = 1; /* version 1 */
	b[n++] = (uint8_t)dl;
	memcpy(b + n, dcid, dl);
	n += dl;
	b[n++] = (uint8_t)sl; /* the client's source CID */
	memcpy(b + n, scid, sl);
	n += sl;
	if (size < n + 24 + QR_TRAILER)
		size = n + 24 + QR_TRAILER;
	memset(b + n, 0x5a, size - QR_TRAILER - n);
	return trailer(b, size - QR_TRAILER, flow, seq);
}

/* A real client's first octet is random; 7 keeps the tests' counts exact. */
void qr_client_dcid(uint8_t *d, size_t len)
{
	if (getrandom(d, len, 0) != (ssize_t)len)
		memset(d, 0x33, len);
	d[0] |= 0xe0;
}

int qs_send_from(struct qs *q, int net, int port, const uint8_t *b, size_t len)
{
	struct sockaddr_in src = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc = -1;

	src.sin_addr.s_addr = htonl(0x7f010001u | (uint32_t)net << 8);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&src, sizeof(src)) == 0 &&
	    sendto(fd, b, len, 0, (struct sockaddr *)&q->addr, sizeof(q->addr)) == (ssize_t)len)
		rc = 0;
	else
		printf("client 127.1.%d.1:%d: %s\n", net, port, strerror(errno));
	if (fd >= 0)
		close(fd);
	q->sent += rc == 0;
	return rc;
}

void qs_collect(struct qs *q, long want, uint32_t seq, int *who, int nflows)
{
	uint64_t end = ur_now_ms() + 5000;
	uint8_t b[2048];
	long got = 0;

	for (int i = 0; i < nflows; i++)
		who[i] = -1;
	while (got < want && ur_now_ms() < end) {
		if (poll(q->pfd, (nfds_t)q->n, 100) <= 0)
			continue;
		for (int k = 0; k < q->n; k++) {
			ssize_t len;

			if (q->pfd[k].fd < 0 || !(q->pfd[k].revents & POLLIN))
				continue;
			while ((len = recv(q->pfd[k].fd, b, sizeof(b), 0)) >= QR_TRAILER) {
				uint32_t flow, s;

				memcpy(&flow, b + len - QR_TRAILER, 4);
				memcpy(&s, b + len - 4, 4);
				if (s != seq || flow >= (uint32_t)nflows || who[flow] >= 0)
					continue;
				who[flow] = k;
				got++;
			}
		}
	}
	q->got += got;
	q->lost += want - got;
}

long qs_unexplained_lost(struct qs *q)
{
	long drops = (long)(ur_backlog_drops() - q->drops0);

	if (q->lost)
		printf("%ld datagrams lost, %ld input backlog drops meanwhile\n", q->lost, drops);
	return q->lost > drops ? q->lost - drops : 0;
}

/* One round's datagrams of the established connections (below @est). */
static int rebind_send(struct qs *q, struct qr_rebind *rb, int r, int est, const int *owner,
		       uint8_t (*cid)[SOCKMIG_QUIC_CID_MAX])
{
	uint8_t b[2048];
	size_t len;

	for (int c = 0; c < est; c++) {
		if (owner[c] < 0)
			continue;
		len = (r + c) % 2 ? qr_long(b, 2, cid[c], rb->cid_len, 0, (uint32_t)c, (uint32_t)r)
				  : qr_short(b, cid[c], rb->cid_len, (uint32_t)c, (uint32_t)r);
		if (qs_send_from(q, r, 40000 + c, b, len) < 0)
			return -1;
		rb->est_sent++;
	}
	return 0;
}

int qr_rebinding_run(struct qs *q, struct qr_rebind *rb)
{
	int *owner = calloc((size_t)rb->conns, sizeof(int)),
	    *who = calloc((size_t)rb->conns, sizeof(int));
	uint8_t(*cid)[SOCKMIG_QUIC_CID_MAX] = calloc((size_t)rb->conns, sizeof(*cid));
	int per = rb->conns / rb->flips, ret = -1;
	bool owns[QR_MAX] = {false};
	uint8_t b[2048], d[8];
	size_t len;

	rb->mis = rb->est_sent = rb->est_lost = rb->init_lost = 0;
	rb->owners = 0;
	if (!owner || !who || !cid || rb->cid_len > SOCKMIG_QUIC_CID_MAX)
		goto out;
	for (int r = 0; r <= rb->flips; r++) {
		int est = r * per, end = r < rb->flips ? est + per : est;

		if (qs_add(q, (uint32_t)r + 1) < 0 || qs_add(q, (uint32_t)r + 1) < 0 ||
		    rebind_send(q, rb, r, est, owner, cid) < 0)
			goto out;
		for (int c = est; c < end; c++) {
			qr_client_dcid(d, sizeof(d));
			len = qr_long(b, 0, d, sizeof(d), QR_INIT_SIZE, (uint32_t)c, (uint32_t)r);
			if (qs_send_from(q, r, 40000 + c, b, len) < 0)
				goto out;
		}
		qs_collect(q, q->sent - q->got - q->lost, (uint32_t)r, who, rb->conns);
		for (int c = 0; c < est; c++) {
			if (owner[c] < 0)
				continue;
			if (who[c] < 0)
				rb->est_lost++;
			else if (who[c] != owner[c])
				rb->mis++;
		}
		for (int c = est; c < end; c++) {
			owner[c] = who[c];
			if (who[c] < 0) {
				rb->init_lost++;
				continue;
			}
			owns[who[c]] = true;
			if (rb->mint(q, who[c], cid[c], rb->cid_len, rb->arg) < 0)
				goto out;
		}
	}
	for (int k = 0; k < QR_MAX; k++)
		rb->owners += owns[k];
	printf("%u-octet CIDs: sent %ld (%ld of established connections), lost %ld, to a "
	       "non-owner %ld, %d owners\n",
	       rb->cid_len, q->sent, rb->est_sent, q->lost, rb->mis, rb->owners);
	ret = 0;
out:
	free(owner);
	free(who);
	free(cid);
	return ret;
}
