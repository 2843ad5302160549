/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * AES-128 encryption and decryption of one block (FIPS-197), byte by
 * byte, for QUIC-LB's encrypted connection IDs (bpf/quic_enc.h, and the
 * single pass of 17-octet CIDs): compiled into the UDP group
 * program (bpf/udp.bpf.c, its encrypted variant) and into libsockmig
 * (lib/quic_enc.c), which mints the CIDs the program reads.
 *
 * Why our own AES: a BPF program cannot call a library, so the program
 * needs one of its own; the encoder uses this same code, so the two cannot
 * disagree; and the tests check it against FIPS-197's known answer, the
 * QUIC-LB draft's vectors and OpenSSL (tests/test_udp_quic_enc.c).
 * QUIC-LB's four-pass algorithm needs encryption alone; its single-pass
 * one (a 17-octet CID: one block) needs decryption too.
 *
 * No table but the S-box, no key-dependent branch; not hardened against
 * cache timing (the S-box lookups): the key protects server IDs from
 * observers on the path, who cannot time the load balancer's lookups.
 *
 * The program takes the S-box and its inverse from a map (struct
 * smu_qkey, which user space fills from smq_aes_sbox below) rather than as a constant: a
 * constant array would be global data (.rodata), which the object's other
 * programs, loaded by 4.19, must not need. Key expansion is user space's
 * alone: the program gets the 11 round keys.
 */
#ifndef SOCKMIG_BPF_AES128_H
#define SOCKMIG_BPF_AES128_H

#include <linux/types.h>

#define SMQ_AES_BLOCK  16
#define SMQ_AES_ROUNDS 10
/* the 11 round keys, 16 octets each, the key itself first */
#define SMQ_AES_RK_LEN (SMQ_AES_BLOCK * (SMQ_AES_ROUNDS + 1))

/* a BPF-to-BPF call in the program (one copy of the rounds for its three
 * passes), inlined in user space */
#ifdef __bpf__
#define SMQ_AES_FN static __attribute__((noinline))
/* a loop clang might keep is a back-edge, which 6.1 refused here */
#define SMQ_UNROLL _Pragma("unroll")
#else
#define SMQ_AES_FN static inline
#define SMQ_UNROLL
#endif

/* Multiplication by x (0x02) in GF(2^8), modulo x^8 + x^4 + x^3 + x + 1. */
static inline __u8 smq_xtime(__u8 b)
{
	return (__u8)((b << 1) ^ ((b >> 7) * 0x1b));
}

/*
 * Encrypt block @in into @out (which may be @in) with round keys @rk and
 * the S-box @sbox. The state is the block's octets in order (column c is
 * octets 4c to 4c+3).
 */
SMQ_AES_FN void smq_aes128_encrypt(const __u8 *rk, const __u8 *sbox, const __u8 *in, __u8 *out)
{
	__u8 s[SMQ_AES_BLOCK], t[SMQ_AES_BLOCK];
	int i, r;

	for (i = 0; i < SMQ_AES_BLOCK; i++)
		s[i] = in[i] ^ rk[i];
	for (r = 1; r <= SMQ_AES_ROUNDS; r++) {
		/* SubBytes and ShiftRows at once: row i%4 turns left by i%4.
		 * Written out: every index into the stack arrays constant (a
		 * loop that clang keeps reads s[] at a variable offset, which
		 * kernels before 5.12 refuse and later ones allow only with
		 * CAP_PERFMON). */
		t[0] = sbox[s[0]], t[1] = sbox[s[5]], t[2] = sbox[s[10]], t[3] = sbox[s[15]];
		t[4] = sbox[s[4]], t[5] = sbox[s[9]], t[6] = sbox[s[14]], t[7] = sbox[s[3]];
		t[8] = sbox[s[8]], t[9] = sbox[s[13]], t[10] = sbox[s[2]], t[11] = sbox[s[7]];
		t[12] = sbox[s[12]], t[13] = sbox[s[1]], t[14] = sbox[s[6]], t[15] = sbox[s[11]];
		/* MixColumns, but in the last round */
		for (i = 0; i < SMQ_AES_BLOCK; i += 4) {
			__u8 a0 = t[i], a1 = t[i + 1], a2 = t[i + 2], a3 = t[i + 3];
			__u8 all = a0 ^ a1 ^ a2 ^ a3;

			if (r == SMQ_AES_ROUNDS) {
				s[i] = a0, s[i + 1] = a1, s[i + 2] = a2, s[i + 3] = a3;
				continue;
			}
			s[i] = a0 ^ all ^ smq_xtime(a0 ^ a1);
			s[i + 1] = a1 ^ all ^ smq_xtime(a1 ^ a2);
			s[i + 2] = a2 ^ all ^ smq_xtime(a2 ^ a3);
			s[i + 3] = a3 ^ all ^ smq_xtime(a3 ^ a0);
		}
		for (i = 0; i < SMQ_AES_BLOCK; i++)
			s[i] ^= rk[r * SMQ_AES_BLOCK + i];
	}
	for (i = 0; i < SMQ_AES_BLOCK; i++)
		out[i] = s[i];
}

/*
 * Decrypt block @in into @out (which may be @in) with the encryption's
 * round keys @rk (the last first) and the inverse S-box @isbox: FIPS-197's
 * inverse cipher. InvMixColumns is MixColumns after a step that XORs
 * 4 * (a0 ^ a2) into a0 and a2, 4 * (a1 ^ a3) into a1 and a3 (its matrix
 * factors so), which keeps to smq_xtime().
 */
SMQ_AES_FN void smq_aes128_decrypt(const __u8 *rk, const __u8 *isbox, const __u8 *in, __u8 *out)
{
	__u8 s[SMQ_AES_BLOCK], t[SMQ_AES_BLOCK];
	int i, r;

	SMQ_UNROLL
	for (i = 0; i < SMQ_AES_BLOCK; i++)
		s[i] = in[i] ^ rk[SMQ_AES_ROUNDS * SMQ_AES_BLOCK + i];
	SMQ_UNROLL
	for (r = SMQ_AES_ROUNDS - 1; r >= 0; r--) {
		/* InvShiftRows and InvSubBytes at once: row i%4 turns right
		 * by i%4 (constant indices, as in smq_aes128_encrypt()) */
		t[0] = isbox[s[0]], t[1] = isbox[s[13]], t[2] = isbox[s[10]], t[3] = isbox[s[7]];
		t[4] = isbox[s[4]], t[5] = isbox[s[1]], t[6] = isbox[s[14]], t[7] = isbox[s[11]];
		t[8] = isbox[s[8]], t[9] = isbox[s[5]], t[10] = isbox[s[2]], t[11] = isbox[s[15]];
		t[12] = isbox[s[12]], t[13] = isbox[s[9]], t[14] = isbox[s[6]], t[15] = isbox[s[3]];
		SMQ_UNROLL
		for (i = 0; i < SMQ_AES_BLOCK; i++)
			t[i] ^= rk[r * SMQ_AES_BLOCK + i];
		/* InvMixColumns, but after the first round key */
		SMQ_UNROLL
		for (i = 0; i < SMQ_AES_BLOCK; i += 4) {
			__u8 a0 = t[i], a1 = t[i + 1], a2 = t[i + 2], a3 = t[i + 3];
			__u8 u = smq_xtime(smq_xtime(a0 ^ a2)), v = smq_xtime(smq_xtime(a1 ^ a3));
			__u8 all;

			if (r == 0) {
				s[i] = a0, s[i + 1] = a1, s[i + 2] = a2, s[i + 3] = a3;
				continue;
			}
			a0 ^= u, a1 ^= v, a2 ^= u, a3 ^= v;
			all = a0 ^ a1 ^ a2 ^ a3;
			s[i] = a0 ^ all ^ smq_xtime(a0 ^ a1);
			s[i + 1] = a1 ^ all ^ smq_xtime(a1 ^ a2);
			s[i + 2] = a2 ^ all ^ smq_xtime(a2 ^ a3);
			s[i + 3] = a3 ^ all ^ smq_xtime(a3 ^ a0);
		}
	}
	SMQ_UNROLL
	for (i = 0; i < SMQ_AES_BLOCK; i++)
		out[i] = s[i];
}

#ifndef __bpf__
/* FIPS-197's S-box, computed from its definition (the multiplicative
 * inverse in GF(2^8), then the affine map), user space's: the program
 * reads the copy written to its map. */
static const __u8 smq_aes_sbox[256] = {
	0x63, 0x7c, 0x77, 0x7b, 0xf2, 0x6b, 0x6f, 0xc5, 0x30, 0x01, 0x67, 0x2b, 0xfe, 0xd7, 0xab,
	0x76, 0xca, 0x82, 0xc9, 0x7d, 0xfa, 0x59, 0x47, 0xf0, 0xad, 0xd4, 0xa2, 0xaf, 0x9c, 0xa4,
	0x72, 0xc0, 0xb7, 0xfd, 0x93, 0x26, 0x36, 0x3f, 0xf7, 0xcc, 0x34, 0xa5, 0xe5, 0xf1, 0x71,
	0xd8, 0x31, 0x15, 0x04, 0xc7, 0x23, 0xc3, 0x18, 0x96, 0x05, 0x9a, 0x07, 0x12, 0x80, 0xe2,
	0xeb, 0x27, 0xb2, 0x75, 0x09, 0x83, 0x2c, 0x1a, 0x1b, 0x6e, 0x5a, 0xa0, 0x52, 0x3b, 0xd6,
	0xb3, 0x29, 0xe3, 0x2f, 0x84, 0x53, 0xd1, 0x00, 0xed, 0x20, 0xfc, 0xb1, 0x5b, 0x6a, 0xcb,
	0xbe, 0x39, 0x4a, 0x4c, 0x58, 0xcf, 0xd0, 0xef, 0xaa, 0xfb, 0x43, 0x4d, 0x33, 0x85, 0x45,
	0xf9, 0x02, 0x7f, 0x50, 0x3c, 0x9f, 0xa8, 0x51, 0xa3, 0x40, 0x8f, 0x92, 0x9d, 0x38, 0xf5,
	0xbc, 0xb6, 0xda, 0x21, 0x10, 0xff, 0xf3, 0xd2, 0xcd, 0x0c, 0x13, 0xec, 0x5f, 0x97, 0x44,
	0x17, 0xc4, 0xa7, 0x7e, 0x3d, 0x64, 0x5d, 0x19, 0x73, 0x60, 0x81, 0x4f, 0xdc, 0x22, 0x2a,
	0x90, 0x88, 0x46, 0xee, 0xb8, 0x14, 0xde, 0x5e, 0x0b, 0xdb, 0xe0, 0x32, 0x3a, 0x0a, 0x49,
	0x06, 0x24, 0x5c, 0xc2, 0xd3, 0xac, 0x62, 0x91, 0x95, 0xe4, 0x79, 0xe7, 0xc8, 0x37, 0x6d,
	0x8d, 0xd5, 0x4e, 0xa9, 0x6c, 0x56, 0xf4, 0xea, 0x65, 0x7a, 0xae, 0x08, 0xba, 0x78, 0x25,
	0x2e, 0x1c, 0xa6, 0xb4, 0xc6, 0xe8, 0xdd, 0x74, 0x1f, 0x4b, 0xbd, 0x8b, 0x8a, 0x70, 0x3e,
	0xb5, 0x66, 0x48, 0x03, 0xf6, 0x0e, 0x61, 0x35, 0x57, 0xb9, 0x86, 0xc1, 0x1d, 0x9e, 0xe1,
	0xf8, 0x98, 0x11, 0x69, 0xd9, 0x8e, 0x94, 0x9b, 0x1e, 0x87, 0xe9, 0xce, 0x55, 0x28, 0xdf,
	0x8c, 0xa1, 0x89, 0x0d, 0xbf, 0xe6, 0x42, 0x68, 0x41, 0x99, 0x2d, 0x0f, 0xb0, 0x54, 0xbb,
	0x16,
};

/* The inverse S-box into @isbox. */
static inline void smq_aes_inv_sbox(__u8 *isbox)
{
	for (int i = 0; i < 256; i++)
		isbox[smq_aes_sbox[i]] = (__u8)i;
}

/* FIPS-197's key expansion: the 11 round keys of @key into @rk. */
static inline void smq_aes128_expand(const __u8 *key, __u8 *rk)
{
	__u8 rcon = 1, w[4];
	int i, j;

	for (i = 0; i < SMQ_AES_BLOCK; i++)
		rk[i] = key[i];
	for (i = 4; i < 4 * (SMQ_AES_ROUNDS + 1); i++) {
		for (j = 0; j < 4; j++)
			w[j] = rk[(i - 1) * 4 + j];
		if (i % 4 == 0) {
			/* RotWord, SubWord, then the round constant */
			__u8 first = w[0];

			w[0] = smq_aes_sbox[w[1]] ^ rcon;
			w[1] = smq_aes_sbox[w[2]];
			w[2] = smq_aes_sbox[w[3]];
			w[3] = smq_aes_sbox[first];
			rcon = smq_xtime(rcon);
		}
		for (j = 0; j < 4; j++)
			rk[i * 4 + j] = rk[(i - 4) * 4 + j] ^ w[j];
	}
	/* the last word of the schedule: wiped, not left on the stack */
	for (j = 0; j < 4; j++)
		((volatile __u8 *)w)[j] = 0;
}
#endif /* !__bpf__ */

#endif /* SOCKMIG_BPF_AES128_H */
