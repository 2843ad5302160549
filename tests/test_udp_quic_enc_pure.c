// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Encrypted QUIC-LB connection IDs, pure (bpf/aes128.h, bpf/quic_enc.h,
 * lib/quic_enc.c): the AES-128 of the program and the library against
 * FIPS-197's known answer and OpenSSL's command line, the four-pass
 * Feistel against the QUIC-LB draft's vectors (of every server ID length
 * they have) and the single-pass one (AES decryption, a 17-octet CID),
 * build and decode with a key for every CID length, and bad keys refused. Routing by them is in test_udp_quic_enc.c.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "harness.h"
#include "sockmig.h"
#include "quic_enc.h"

/* @hex (an even count of hex digits) into @out; its length in octets. */
static size_t unhex(const char *hex, uint8_t *out)
{
	size_t n = strlen(hex) / 2;

	for (size_t i = 0; i < n; i++)
		sscanf(hex + 2 * i, "%2hhx", &out[i]);
	return n;
}

static void tohex(const uint8_t *b, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
}

SM_PURE(udp_quic_enc_aes_known_answer)
{
	uint8_t key[16], pt[16], want[16], rk[SMQ_AES_RK_LEN], out[16], isbox[256];

	/* FIPS-197 (2001), appendix C.1: AES-128 */
	unhex("000102030405060708090a0b0c0d0e0f", key);
	unhex("00112233445566778899aabbccddeeff", pt);
	unhex("69c4e0d86a7b0430d8cdb78070b4c55a", want);
	smq_aes128_expand(key, rk);
	smq_aes128_encrypt(rk, smq_aes_sbox, pt, out);
	smq_aes_inv_sbox(isbox);
	if (!ASSERT_EQ(memcmp(out, want, 16), 0, "FIPS-197 C.1 ciphertext"))
		return SM_FAIL;
	/* its inverse cipher (C.1's second half) */
	smq_aes128_decrypt(rk, isbox, want, out);
	if (!ASSERT_EQ(memcmp(out, pt, 16), 0, "FIPS-197 C.1 plaintext back"))
		return SM_FAIL;
	/* FIPS-197 appendix A.1: the last round key of key 2b7e1516... */
	unhex("2b7e151628aed2a6abf7158809cf4f3c", key);
	unhex("d014f9a8c9ee2589e13f0cc8b6630ca6", want);
	smq_aes128_expand(key, rk);
	if (!ASSERT_EQ(memcmp(rk + 160, want, 16), 0, "FIPS-197 A.1 round key 10"))
		return SM_FAIL;
	return SM_PASS;
}

/* Blocks of random keys encrypted here and by `openssl enc -aes-128-ecb`,
 * and openssl's decrypted here. */
SM_PURE(udp_quic_enc_aes_matches_openssl)
{
	char in[] = "/tmp/sockmig-aes-XXXXXX", cmd[256], khex[33], got[64];
	uint8_t key[16], blocks[4][16], rk[SMQ_AES_RK_LEN], mine[16], theirs[16], isbox[256];
	int ret = SM_FAIL, fd;
	FILE *p;

	if (system("command -v openssl >/dev/null 2>&1") != 0)
		return SKIP("no openssl command");
	smq_aes_inv_sbox(isbox);
	for (int k = 0; k < 4; k++) {
		if (getrandom(key, sizeof(key), 0) != 16 ||
		    getrandom(blocks, sizeof(blocks), 0) != 64)
			return SM_FAIL;
		fd = mkstemp(in);
		if (!ASSERT_TRUE(fd >= 0, "a temporary file") ||
		    !ASSERT_EQ(write(fd, blocks, sizeof(blocks)), (ssize_t)sizeof(blocks), "write"))
			goto out;
		close(fd);
		tohex(key, 16, khex);
		snprintf(cmd, sizeof(cmd),
			 "openssl enc -aes-128-ecb -nopad -K %s -in %s"
			 " | od -An -tx1 -v | tr -d ' \\n'",
			 khex, in);
		p = popen(cmd, "r");
		if (!ASSERT_TRUE(p, "openssl ran"))
			goto out;
		smq_aes128_expand(key, rk);
		for (int b = 0; b < 4; b++) {
			if (!ASSERT_EQ(fread(got, 1, 32, p), 32, "a block from openssl"))
				break;
			got[32] = 0;
			unhex(got, theirs);
			smq_aes128_encrypt(rk, smq_aes_sbox, blocks[b], mine);
			if (!ASSERT_EQ(memcmp(mine, theirs, 16), 0, "the same ciphertext") ||
			    (smq_aes128_decrypt(rk, isbox, theirs, theirs),
			     !ASSERT_EQ(memcmp(theirs, blocks[b], 16), 0,
					"openssl's ciphertext decrypted back"))) {
				printf("key %s block %d: openssl %s\n", khex, b, got);
				pclose(p);
				goto out;
			}
		}
		pclose(p);
		unlink(in);
		strcpy(in, "/tmp/sockmig-aes-XXXXXX");
	}
	ret = SM_PASS;
out:
	if (strcmp(in, "/tmp/sockmig-aes-XXXXXX") != 0)
		unlink(in);
	return ret;
}

/*
 * draft-ietf-quic-load-balancers (quicwg/load-balancers, its editor's copy
 * of 2026-05-29), "Encryption Example" and "Test Vectors: Encrypted CIDs":
 * server ID, nonce, key, CID (first octet included).
 */
static const struct {
	const char *sid, *nonce, *key, *cid;
} vectors[] = {
	{"31441a", "9c69c275", "fdf726a9893ec05c0632d3956680baf0", "0767947d29be054a"},
	{"ed793a", "ee080dbf", "8f95f09245765f80256934e50c66207f", "0720b1d07b359d3c"},
	/* server ID longer than the nonce: four passes to decrypt it */
	{"ed793a51d49b8f5fab65", "ee080dbf48", "8f95f09245765f80256934e50c66207f",
	 "2fcc381bc74cb4fbad2823a3d1f8fed2"},
	{"ed793a51d49b8f5fab", "ee080dbf48c0d1e55d", "8f95f09245765f80256934e50c66207f",
	 "125779c9cc86beb3a3a4a3ca96fce4bfe0cdbc"},
};

SM_PURE(udp_quic_enc_draft_vectors)
{
	uint8_t sid[20], nonce[20], key[16], cid[21], pt[20], out[20], back[20], rk[SMQ_AES_RK_LEN];
	uint8_t isbox[256];
	struct sockmig_quic_cid_info info;

	for (size_t v = 0; v < sizeof(vectors) / sizeof(vectors[0]); v++) {
		size_t sl = unhex(vectors[v].sid, sid), nl = unhex(vectors[v].nonce, nonce);
		size_t cl = unhex(vectors[v].cid, cid);

		unhex(vectors[v].key, key);
		memcpy(pt, sid, sl);
		memcpy(pt + sl, nonce, nl);
		smq_aes128_expand(key, rk);
		smq_encrypt(rk, smq_aes_sbox, (uint32_t)sl, (uint32_t)nl, pt, out);
		smq_decrypt(rk, smq_aes_sbox, (uint32_t)sl, (uint32_t)nl, out, back);
		printf("vector %zu: server ID of %zu octets, nonce of %zu\n", v, sl, nl);
		if (!ASSERT_EQ(cl, sl + nl + 1, "the vector's length") ||
		    !ASSERT_EQ(memcmp(out, cid + 1, sl + nl), 0, "encrypted as the draft says") ||
		    !ASSERT_EQ(memcmp(back, pt, sl + nl), 0, "decrypted back"))
			return SM_FAIL;
		if (sl != 3)
			continue;
		/* sockmig's server ID: the library decodes it as the program does */
		if (!ASSERT_OK(sockmig_quic_cid_decode_key(cid, cl, key, &info), "decode") ||
		    !ASSERT_EQ(info.slot, (uint32_t)(sid[0] << 4 | sid[1] >> 4), "slot") ||
		    !ASSERT_EQ(info.generation, (uint32_t)((sid[1] & 0xf) << 8 | sid[2]),
			       "generation") ||
		    !ASSERT_EQ(info.config_id, cid[0] >> 5, "config"))
			return SM_FAIL;
	}
	/* the single-pass vector (16 octets: one AES block; its server ID of
	 * 8 octets is not sockmig's), both ways */
	unhex("ed793a51d49b8f5fee080dbf48c0d1e5", pt);
	unhex("504dd2d05a7b0de9b2b9907afb5ecf8cc3", cid);
	smq_aes128_encrypt(rk, smq_aes_sbox, pt, out);
	smq_aes_inv_sbox(isbox);
	smq_aes128_decrypt(rk, isbox, cid + 1, back);
	if (!ASSERT_EQ(memcmp(out, cid + 1, 16), 0, "the single-pass vector") ||
	    !ASSERT_EQ(memcmp(back, pt, 16), 0, "the single-pass vector decrypted"))
		return SM_FAIL;
	return SM_PASS;
}

SM_PURE(udp_quic_enc_build_decode_round_trip)
{
	static const uint32_t slots[] = {0, 1, 2730, 4095}, gens[] = {0, 1, 255, 4095};
	struct sockmig_quic_cid_info in, out, plain;
	uint8_t key[16], cid[SOCKMIG_QUIC_CID_MAX + 1], again[SOCKMIG_QUIC_CID_MAX];
	long hidden = 0, tries = 0;

	if (getrandom(key, sizeof(key), 0) != 16)
		return SM_FAIL;
	key[0] |= 1;
	for (uint32_t len = SOCKMIG_QUIC_CID_MIN; len <= SOCKMIG_QUIC_CID_MAX; len++) {
		for (uint32_t cr = 0; cr <= SOCKMIG_QUIC_CONFIG_MAX; cr += 3)
			for (size_t s = 0; s < 4; s++)
				for (size_t g = 0; g < 4; g++) {
					in = (struct sockmig_quic_cid_info){cr, slots[s], gens[g],
									    len};
					cid[len] = 0xee;
					if (!ASSERT_EQ(sockmig_quic_cid_build_key(&in, key, cid,
										  sizeof(cid)),
						       len, "build") ||
					    !ASSERT_EQ(cid[len], 0xee, "nothing past the CID") ||
					    !ASSERT_EQ(cid[0], cr << 5 | (len - 1),
						       "first octet in plaintext") ||
					    !ASSERT_OK(sockmig_quic_cid_decode_key(cid, len, key,
										   &out),
						       "decode") ||
					    !ASSERT_EQ(out.config_id, cr, "config") ||
					    !ASSERT_EQ(out.slot, slots[s], "slot") ||
					    !ASSERT_EQ(out.generation, gens[g], "generation") ||
					    !ASSERT_EQ(out.len, len, "length") ||
					    !ASSERT_OK(sockmig_quic_cid_decode(cid, len, &plain),
						       "plaintext decode"))
						return SM_FAIL;
					tries++;
					hidden += plain.slot != slots[s] ||
						  plain.generation != gens[g];
				}
	}
	/* read as plaintext, the server ID is another, but for a chance of
	 * 2^-24 a CID (the nonce is random): 3.7e-5 coincidences expected in
	 * the 624 tries, 3 or more about 1e-14 */
	printf("server IDs read in the clear: %ld of %ld\n", tries - hidden, tries);
	if (!ASSERT_TRUE(tries - hidden <= 2, "server IDs not readable without the key"))
		return SM_FAIL;
	/* two CIDs of one member share no server ID octets in the clear, in
	 * four passes (20) and in one (17) */
	for (uint32_t len = 17; len <= 20; len += 3) {
		in = (struct sockmig_quic_cid_info){1, 7, 9, len};
		if (!ASSERT_EQ(sockmig_quic_cid_build_key(&in, key, cid, len), len, "build") ||
		    !ASSERT_EQ(sockmig_quic_cid_build_key(&in, key, again, len), len,
			       "build again") ||
		    !ASSERT_TRUE(memcmp(cid + 1, again + 1, 3) != 0, "server ID octets differ"))
			return SM_FAIL;
	}
	return SM_PASS;
}

SM_PURE(udp_quic_enc_refuses_bad_keys)
{
	struct sockmig_quic_cid_info out, in = {0, 5, 5, 8};
	uint8_t key[16], zero[16] = {0}, cid[32];

	memset(key, 0x42, sizeof(key));
	if (!ASSERT_ERR(sockmig_quic_cid_build_key(&in, NULL, cid, 32), EINVAL, "no key") ||
	    !ASSERT_ERR(sockmig_quic_cid_build_key(&in, zero, cid, 32), EINVAL, "a zero key") ||
	    !ASSERT_ERR(sockmig_quic_cid_decode_key(cid, 8, NULL, &out), EINVAL,
			"decode without a key") ||
	    !ASSERT_ERR(sockmig_quic_cid_build_key(NULL, key, cid, 32), EINVAL, "no info") ||
	    !ASSERT_ERR(sockmig_quic_cid_build_key(&in, key, cid, 7), EINVAL, "no room") ||
	    !ASSERT_ERR(sockmig_quic_cid_decode_key(cid, 21, key, &out), EINVAL, "length 21"))
		return SM_FAIL;
	return SM_PASS;
}
