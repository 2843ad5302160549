// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * UDP groups in mode quic-lb with encrypted connection IDs: the group's
 * key (its round keys in the group's qkey map, root's alone), CIDs
 * encrypted with QUIC-LB's four-pass algorithm (bpf/quic_enc.h, the code
 * the group's program decrypts with), or at 17 octets its single pass
 * (one AES block), and their pure build and decode.
 * Every copy of a key or its round keys in this process is wiped after
 * use.
 */
#include <bpf/bpf.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "udp_priv.h"
#include "quic_enc.h"

_Static_assert(sizeof(((struct smu_qkey *)0)->rk) == SMQ_AES_RK_LEN, "round keys");
_Static_assert(sizeof(((struct smu_qkey *)0)->sbox) == sizeof(smq_aes_sbox), "S-box");
_Static_assert(sizeof(((struct smu_qkey *)0)->isbox) == sizeof(smq_aes_sbox), "inverse S-box");

#define KEY_LEN 16

static int check_key(const uint8_t *key)
{
	uint8_t any = 0;

	if (!key)
		return sm_fail(EINVAL, "QUIC CID: no key");
	for (int i = 0; i < KEY_LEN; i++)
		any |= key[i];
	if (!any)
		return sm_fail(EINVAL, "QUIC CID: a key of 16 zero octets is no key");
	return 0;
}

/* @key's round keys, the S-box and its inverse into @q. */
static void qkey_make(const uint8_t *key, struct smu_qkey *q)
{
	smq_aes128_expand(key, q->rk);
	memcpy(q->sbox, smq_aes_sbox, sizeof(q->sbox));
	smq_aes_inv_sbox(q->isbox);
}

static int qkey_read(struct sockmig_udp_group *g, struct smu_qkey *q)
{
	uint32_t zero = 0;

	if (bpf_map_lookup_elem(g->fd[UFD_QKEY], &zero, q) < 0)
		return sm_fail(errno, "cannot read the QUIC key of %s: %s", g->base.name,
			       strerror(errno));
	return 0;
}

int sm_quic_pinned_enc(const struct sockmig_udp_group *g)
{
	char pin[PATH_MAX + 32];
	struct bpf_map_info info;
	uint32_t zero = 0, len = sizeof(info);
	struct smu_config c;
	int enc = -1, fd;

	snprintf(pin, sizeof(pin), "%s/%s", g->base.path, sm_udp_pins[UFD_CONFIG]);
	fd = bpf_obj_get(pin);
	if (fd < 0)
		return -1;
	memset(&info, 0, sizeof(info));
	/* another version's values are not read (its open fails, said) */
	if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0 && info.value_size == sizeof(c) &&
	    bpf_map_lookup_elem(fd, &zero, &c) == 0)
		enc = c.mode == 0 ? -1 : c.mode == SMU_MODE_QUIC_LB && c.quic_enc;
	close(fd);
	return enc;
}

int sm_quic_key_set(struct sockmig_udp_group *g, struct smu_config *c, const uint8_t *key,
		    uint32_t cid_len, bool made)
{
	struct smu_qkey q;
	uint32_t zero = 0;
	int err;

	if (key && (err = check_key(key)))
		return err;
	if (made) {
		c->quic_enc = key != NULL;
		if (!key)
			return 0;
		qkey_make(key, &q);
		err = bpf_map_update_elem(g->fd[UFD_QKEY], &zero, &q, BPF_ANY) < 0 ? -errno : 0;
		explicit_bzero(&q, sizeof(q));
		if (err)
			return sm_fail(-err, "cannot write the QUIC key of %s: %s", g->base.name,
				       strerror(-err));
		return 0;
	}
	if (!key) {
		if (cid_len && c->quic_enc)
			return sm_fail(EEXIST,
				       "UDP group %s mints encrypted CIDs: its key is needed",
				       g->base.name);
		return 0;
	}
	if (!c->quic_enc)
		return sm_fail(EEXIST, "UDP group %s mints plaintext CIDs: no key", g->base.name);
	err = qkey_read(g, &q);
	/* the first round key is the key */
	if (!err && memcmp(q.rk, key, KEY_LEN) != 0)
		err = sm_fail(EEXIST, "UDP group %s mints CIDs of another key", g->base.name);
	explicit_bzero(&q, sizeof(q));
	return err;
}

int sm_quic_key_get(struct sockmig_udp_group *g, uint8_t *key)
{
	struct smu_config c;
	struct smu_qkey q;
	uint32_t zero = 0;
	int err;

	if (bpf_map_lookup_elem(g->fd[UFD_CONFIG], &zero, &c) < 0)
		return sm_fail(errno, "cannot read the config of %s: %s", g->base.name,
			       strerror(errno));
	if (c.mode != SMU_MODE_QUIC_LB || !c.quic_enc)
		return 0;
	err = qkey_read(g, &q);
	if (!err)
		memcpy(key, q.rk, KEY_LEN);
	explicit_bzero(&q, sizeof(q));
	return err ? err : 1;
}

int sm_quic_cid_encrypt(const struct smu_qkey *q, uint8_t *cid, uint32_t n)
{
	/* octet 0 stays plaintext: the server ID (3 octets) and the nonce,
	 * one AES block when they are 16 octets (single pass), else four
	 * passes */
	if (n - 1 == SMQ_SINGLE_LEN)
		smq_aes128_encrypt(q->rk, q->sbox, cid + 1, cid + 1);
	else
		smq_encrypt(q->rk, q->sbox, 3, n - 4, cid + 1, cid + 1);
	return 0;
}

int sockmig_quic_cid_build_key(const struct sockmig_quic_cid_info *info, const uint8_t *key,
			       uint8_t *cid, size_t len)
{
	struct smu_qkey q;
	int err = check_key(key);

	if (err)
		return err;
	qkey_make(key, &q);
	err = sm_quic_cid_build(info, &q, cid, len);
	explicit_bzero(&q, sizeof(q));
	return err;
}

int sockmig_quic_cid_decode_key(const uint8_t *cid, size_t len, const uint8_t *key,
				struct sockmig_quic_cid_info *out)
{
	uint8_t plain[SMU_QUIC_CID_MAX], left[SMQ_HALF_MAX], right[SMQ_HALF_MAX];
	uint32_t pt, half;
	struct smu_qkey q;
	int err = check_key(key);

	if (err)
		return err;
	if (!cid || !out)
		return sm_fail(EINVAL, "QUIC CID: no CID or no result");
	if (len < SMU_QUIC_CID_MIN || len > SMU_QUIC_CID_MAX)
		return sm_fail(EINVAL, "QUIC CID length %zu is not within %d to %d", len,
			       SMU_QUIC_CID_MIN, SMU_QUIC_CID_MAX);
	/* the program's way: one block (single pass), or the left half
	 * alone (three passes), which holds the server ID; the nonce is not
	 * decrypted in four passes */
	pt = (uint32_t)len - 1;
	half = (pt + 1) / 2;
	qkey_make(key, &q);
	if (pt == SMQ_SINGLE_LEN) {
		smq_aes128_decrypt(q.rk, q.isbox, cid + 1, plain + 1);
		memcpy(left, plain + 1, 3);
	} else {
		smq_split(cid + 1, pt, left, right);
		smq_decrypt_left(q.rk, q.sbox, left, right, pt, half);
	}
	memset(plain, 0, sizeof(plain));
	plain[0] = cid[0];
	memcpy(plain + 1, left, 3);
	err = sockmig_quic_cid_decode(plain, len, out);
	explicit_bzero(&q, sizeof(q));
	explicit_bzero(left, sizeof(left));
	explicit_bzero(right, sizeof(right));
	return err;
}
