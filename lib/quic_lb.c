// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * UDP groups in mode quic-lb: the connection IDs that the group's program
 * (bpf/udp.bpf.c) routes by, QUIC-LB's plaintext layout with a 3-octet
 * server ID (include/sockmig/udp.h, bpf/udp.h): minting one for a member
 * (its slot and generation read from the group's maps; encrypted when the
 * group has a key, lib/quic_enc.c), building and decoding one (pure), and
 * the mode's counters.
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "udp_priv.h"

int sockmig_quic_cid_build(const struct sockmig_quic_cid_info *info, uint8_t *cid, size_t len)
{
	return sm_quic_cid_build(info, NULL, cid, len);
}

int sm_quic_cid_build(const struct sockmig_quic_cid_info *info, const struct smu_qkey *q,
		      uint8_t *cid, size_t len)
{
	uint32_t sid, n;
	ssize_t got;

	if (!info || !cid)
		return sm_fail(EINVAL, "QUIC CID: no description or no buffer");
	n = info->len;
	if (n < SMU_QUIC_CID_MIN || n > SMU_QUIC_CID_MAX)
		return sm_fail(EINVAL, "QUIC CID length %u is not within %d to %d", n,
			       SMU_QUIC_CID_MIN, SMU_QUIC_CID_MAX);
	if (len < n)
		return sm_fail(EINVAL, "QUIC CID: %zu octets of room for a %u-octet CID", len, n);
	if (info->config_id > SMU_QUIC_CR_MAX)
		return sm_fail(EINVAL, "QUIC config rotation id %u is above %d", info->config_id,
			       SMU_QUIC_CR_MAX);
	if (info->slot >= SMU_MAX_MEMBERS)
		return sm_fail(EINVAL, "QUIC CID: slot %u is not below %d", info->slot,
			       SMU_MAX_MEMBERS);
	/* the nonce first: nothing is written when it fails (a signal may
	 * interrupt a read before the pool is ready: again) */
	do
		got = getrandom(cid + 4, n - 4, 0);
	while (got < 0 && errno == EINTR);
	if (got != (ssize_t)(n - 4))
		return sm_fail(got < 0 ? errno : EIO, "QUIC CID: no random nonce: %s",
			       strerror(got < 0 ? errno : EIO));
	sid = info->slot << SMU_QUIC_GEN_BITS | (info->generation & SMU_QUIC_GEN_MASK);
	cid[0] = (uint8_t)(info->config_id << 5 | (n - 1));
	cid[1] = (uint8_t)(sid >> 16);
	cid[2] = (uint8_t)(sid >> 8);
	cid[3] = (uint8_t)sid;
	if (q) {
		int err = sm_quic_cid_encrypt(q, cid, n);

		if (err) {
			explicit_bzero(cid, n);
			return err;
		}
	}
	return (int)n;
}

int sockmig_quic_cid_decode(const uint8_t *cid, size_t len, struct sockmig_quic_cid_info *out)
{
	uint32_t sid;

	if (!cid || !out)
		return sm_fail(EINVAL, "QUIC CID: no CID or no result");
	if (len < SMU_QUIC_CID_MIN || len > SMU_QUIC_CID_MAX)
		return sm_fail(EINVAL, "QUIC CID length %zu is not within %d to %d", len,
			       SMU_QUIC_CID_MIN, SMU_QUIC_CID_MAX);
	if ((size_t)(cid[0] & 0x1f) + 1 != len)
		return sm_fail(EINVAL, "QUIC CID: its first octet says %d octets, not %zu",
			       (cid[0] & 0x1f) + 1, len);
	if ((cid[0] >> 5) > SMU_QUIC_CR_MAX)
		return sm_fail(EINVAL, "QUIC CID: config rotation 7 (unroutable)");
	sid = (uint32_t)cid[1] << 16 | (uint32_t)cid[2] << 8 | cid[3];
	memset(out, 0, sizeof(*out));
	out->config_id = cid[0] >> 5;
	out->slot = sid >> SMU_QUIC_GEN_BITS;
	out->generation = sid & SMU_QUIC_GEN_MASK;
	out->len = (uint32_t)len;
	return 0;
}

int sockmig_quic_cid_encode(struct sockmig_udp_group *g, int fd, uint8_t *cid, size_t len)
{
	struct sockmig_quic_cid_info info;
	struct smu_config c;
	struct smu_slot s;
	uint32_t zero = 0;
	uint64_t cookie;
	int slot;

	if (!g || !cid)
		return sm_fail(EINVAL, "QUIC CID: no group or no buffer");
	if (bpf_map_lookup_elem(g->fd[UFD_CONFIG], &zero, &c) < 0)
		return sm_fail(errno, "cannot read the config of %s: %s", g->base.name,
			       strerror(errno));
	if (c.mode != SMU_MODE_QUIC_LB)
		return sm_fail(EINVAL, "UDP group %s runs mode %s, not quic-lb: no CIDs",
			       g->base.name, sockmig_udp_mode_str(c.mode));
	if (len < c.quic_cid_len)
		return sm_fail(EINVAL, "QUIC CID: %zu octets of room, group %s mints %u", len,
			       g->base.name, c.quic_cid_len);
	slot = sm_udp_fd_slot(g, fd, &c, &s, &cookie);
	if (slot < 0)
		return slot;
	info.config_id = c.quic_cr;
	info.slot = (uint32_t)slot;
	info.generation = s.generation;
	info.len = c.quic_cid_len;
	if (c.quic_enc) {
		struct smu_qkey q;
		uint32_t zero = 0;

		if (bpf_map_lookup_elem(g->fd[UFD_QKEY], &zero, &q) < 0)
			return sm_fail(errno, "cannot read the QUIC key of %s: %s", g->base.name,
				       strerror(errno));
		slot = sm_quic_cid_build(&info, &q, cid, len);
		explicit_bzero(&q, sizeof(q));
		return slot;
	}
	return sockmig_quic_cid_build(&info, cid, len);
}

int sockmig_quic_stats_read(struct sockmig_udp_group *g, struct sockmig_quic_stats *out)
{
	struct smu_stats sum;
	int err;

	if (!g || !out)
		return sm_fail(EINVAL, "QUIC stats: no group or no result");
	err = sm_udp_stats_sum(g, &sum);
	if (err)
		return err;
	memset(out, 0, sizeof(*out));
	out->hits = sum.quic_hits;
	out->stale = sum.quic_stale;
	out->other = sum.quic_other;
	return 0;
}
